package clone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// Profiles are the built-in scrub profiles.
var Profiles = []string{"staging", "training"}

// ErrGeneration is returned for a DHIS2 schema generation the scrub profiles do not know.
var ErrGeneration = errors.New("unrecognised DHIS2 schema generation")

// ErrProfile is returned for an unknown scrub profile.
var ErrProfile = errors.New("unknown scrub profile")

// ErrVerify is returned when a scrub verification query finds a rule not applied.
var ErrVerify = errors.New("scrub verification failed")

// Supported DHIS2 schema generations (2.38 merged users into userinfo; 2.44 is the newest
// whose schema the rules were checked against).
const (
	minMinor = 38
	maxMinor = 44
)

// Generation is a DHIS2 schema generation, e.g. 2.42.
type Generation struct{ Major, Minor int }

func (g Generation) String() string { return fmt.Sprintf("%d.%d", g.Major, g.Minor) }

// jsonSettings reports whether systemsetting values are JSON-encoded (before 2.42).
func (g Generation) jsonSettings() bool { return g.Minor < 42 }

// ParseGeneration returns the generation of a Flyway version ("2.42.17") and refuses those the
// scrub profiles were not written for.
func ParseGeneration(flyway string) (Generation, error) {
	if flyway == "" {
		return Generation{}, fmt.Errorf("%w: the set has no flyway_schema_history version (not a DHIS2 ≥ 2.31 database?)", ErrGeneration)
	}
	major, minor, ok := pg.Generation(flyway)
	if !ok || major != 2 || minor < minMinor || minor > maxMinor {
		return Generation{}, fmt.Errorf("%w: flyway version %s; the scrub profiles know 2.%d to 2.%d, so nothing was changed (upgrade dhis2-life)", ErrGeneration, flyway, minMinor, maxMinor)
	}
	return Generation{major, minor}, nil
}

// Outward-facing job types (DOMAIN.md), plus their older names; *_EXPIRY_ALERT matched apart.
var outwardJobTypes = []string{
	"DATA_SYNC", "META_DATA_SYNC", "TRACKED_ENTITY_DATA_SYNC", "SINGLE_EVENT_DATA_SYNC",
	"EVENT_PROGRAMS_DATA_SYNC", "TRACKER_PROGRAMS_DATA_SYNC", "PROGRAM_DATA_SYNC",
	"AGGREGATE_DATA_EXCHANGE", "MONITORING", "SEND_SCHEDULED_MESSAGE", "PROGRAM_NOTIFICATIONS",
	"DATA_SET_NOTIFICATION", "SMS_SEND", "SMS_INBOUND_PROCESSING", "PUSH_ANALYSIS",
}

var (
	emailKeys = []string{"keyEmailHostName", "keyEmailPort", "keyEmailUsername", "keyEmailPassword",
		"keyEmailSender", "keyEmailTls", "keySystemNotificationsEmail"}
	remoteKeys = []string{"keyRemoteInstanceUrl", "keyRemoteInstanceUsername", "keyRemoteInstancePassword"}
	smsKeys    = []string{"keySmsSetting"}
)

// ScrubbedRouteURL replaces every route URL: the .invalid TLD never resolves (RFC 2606).
const ScrubbedRouteURL = "https://scrubbed.invalid/"

// Change is what one scrub rule changed.
type Change struct {
	Rule string `json:"rule"`
	Rows int64  `json:"rows"`
	What string `json:"what"`
}

// Check is the result of one verification query.
type Check struct {
	Rule       string `json:"rule"`
	OK         bool   `json:"ok"`
	Violations int64  `json:"violations"`
	Detail     string `json:"detail,omitempty"`
}

// VerifyError lists the failed checks; it wraps ErrVerify.
type VerifyError struct{ Failed []Check }

func (e *VerifyError) Error() string {
	var s []string
	for _, c := range e.Failed {
		d := c.Rule
		if c.Detail != "" {
			d += " (" + c.Detail + ")"
		}
		s = append(s, d)
	}
	return fmt.Sprintf("%v: %s", ErrVerify, strings.Join(s, "; "))
}

func (e *VerifyError) Unwrap() error { return ErrVerify }

// Scrubber applies and verifies one profile on one database.
type Scrubber struct {
	Profile  string
	Gen      Generation
	Instance string
	SetID    string
	SetTime  time.Time
	// KeepAccounts (training) stay usable with KeepPassword.
	KeepAccounts []string
	KeepPassword string
	// CustomSQL runs after the built-in rules, in the same transaction.
	CustomSQL []SQL
	// PII configures the pseudonymisation of personal data (pii.go).
	PII PIIOptions

	keepHash, unusableHash string
}

// SQL is one custom scrub entry: a statement or a file's text.
type SQL struct {
	Source string // the config entry
	Text   string
}

// NewScrubber prepares the scrub of target t for a set: it reads the keep password file and
// the custom SQL files, so that a missing file fails before anything is changed.
func NewScrubber(t *config.Target, configDir string, gen Generation, instance, setID string, setTime time.Time) (*Scrubber, error) {
	s := &Scrubber{Profile: t.Profile, Gen: gen, Instance: instance, SetID: setID, SetTime: setTime, PII: PIIFor(t)}
	switch t.Profile {
	case "staging", "training":
	default:
		return nil, fmt.Errorf("%w %q for target %s: use %s", ErrProfile, t.Profile, t.Name, strings.Join(Profiles, " or "))
	}
	if t.Profile == "training" {
		s.KeepAccounts = t.KeepAccounts
		if len(t.KeepAccounts) > 0 {
			if t.KeepPasswordFile == "" {
				return nil, fmt.Errorf("target %s keeps accounts %s but has no keep_password_file", t.Name, strings.Join(t.KeepAccounts, ", "))
			}
			if err := config.CheckSecretFile(t.KeepPasswordFile); err != nil {
				return nil, fmt.Errorf("target %s keep_password_file: %w", t.Name, err)
			}
			b, err := os.ReadFile(t.KeepPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("reading keep_password_file: %w", err)
			}
			s.KeepPassword = strings.TrimRight(string(b), "\r\n")
			if len(s.KeepPassword) < 8 || len(s.KeepPassword) > 72 {
				return nil, fmt.Errorf("target %s: the password in %s must have 8 to 72 characters (DHIS2 and bcrypt limits)", t.Name, t.KeepPasswordFile)
			}
		}
	}
	for _, e := range t.ScrubSQL {
		e = strings.TrimSpace(e)
		if isSQLFile(e) {
			p := e
			if !filepath.IsAbs(p) {
				p = filepath.Join(configDir, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("target %s scrub_sql: %w", t.Name, err)
			}
			s.CustomSQL = append(s.CustomSQL, SQL{Source: p, Text: string(b)})
			continue
		}
		if e != "" {
			s.CustomSQL = append(s.CustomSQL, SQL{Source: "statement", Text: e})
		}
	}
	return s, nil
}

func isSQLFile(e string) bool {
	return strings.HasSuffix(strings.ToLower(e), ".sql") && !strings.ContainsAny(e, " \t\n;")
}

// Label is the word the banner uses: STAGING or TRAINING.
func (s *Scrubber) Label() string { return strings.ToUpper(s.Profile) }

// Title and Banner are the applicationTitle and keyApplicationNotification values.
func (s *Scrubber) Title() string {
	return fmt.Sprintf("%s copy of %s - set %s (%s)", s.Label(), s.Instance, s.SetID, s.SetTime.UTC().Format("2006-01-02 15:04 UTC"))
}

// Banner is the notification shown to every user.
func (s *Scrubber) Banner() string {
	return fmt.Sprintf("This is a %s copy of %s restored from snapshot set %s (data as of %s). It is not production: email, SMS, synchronisation and integrations are switched off.",
		s.Label(), s.Instance, s.SetID, s.SetTime.UTC().Format("2006-01-02 15:04 UTC"))
}

func (s *Scrubber) hashes() error {
	if s.unusableHash != "" {
		return nil
	}
	rnd := make([]byte, 32)
	if _, err := randRead(rnd); err != nil {
		return err
	}
	// bcrypt takes at most 72 bytes; hex of 32 random bytes is 64.
	h, err := bcrypt.GenerateFromPassword([]byte(fmt.Sprintf("%x", rnd)), 10)
	if err != nil {
		return err
	}
	s.unusableHash = string(h)
	if s.KeepPassword != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(s.KeepPassword), 10)
		if err != nil {
			return err
		}
		s.keepHash = string(h)
	}
	return nil
}

// schema is what the scrub needs to know about the database.
type schema struct {
	tables  map[string]bool
	columns map[string]map[string]bool // table → non-generated columns
}

func inspect(ctx context.Context, q pg.Querier) (*schema, error) {
	sc := &schema{tables: map[string]bool{}, columns: map[string]map[string]bool{}}
	rows, err := q.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND is_generated = 'NEVER' AND table_name = ANY($1)`,
		[]string{"systemsetting", "jobconfiguration", "keyjsonvalue", "aggregatedataexchange", "route", "api_token", "userinfo", "previouspasswords"})
	if err != nil {
		return nil, fmt.Errorf("inspecting the schema: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, err
		}
		sc.tables[t] = true
		if sc.columns[t] == nil {
			sc.columns[t] = map[string]bool{}
		}
		sc.columns[t][c] = true
	}
	return sc, rows.Err()
}

// userScrub is the anonymised value of each userinfo column (applied when the column exists).
var userScrub = []struct{ col, expr string }{
	{"firstname", "'Anonymous'"},
	{"surname", "'User ' || userinfoid"},
	{"name", "'Anonymous User ' || userinfoid"}, // a plain column before it became generated
	{"username", "'anon-' || userinfoid"},
	{"email", "NULL"}, {"verifiedemail", "NULL"}, {"emailverificationtoken", "NULL"},
	{"phonenumber", "NULL"}, {"whatsapp", "NULL"}, {"telegram", "NULL"}, {"twitter", "NULL"},
	{"skype", "NULL"}, {"facebookmessenger", "NULL"},
	{"jobtitle", "NULL"}, {"introduction", "NULL"}, {"gender", "NULL"}, {"birthday", "NULL"},
	{"nationality", "NULL"}, {"employer", "NULL"}, {"education", "NULL"}, {"interests", "NULL"},
	{"languages", "NULL"}, {"welcomemessage", "NULL"}, {"avatar", "NULL"},
	{"secret", "NULL"}, {"twofactortype", "'NOT_ENABLED'"},
	{"openid", "NULL"}, {"ldapid", "NULL"}, {"externalauth", "false"},
	{"restoretoken", "NULL"}, {"restoreexpiry", "NULL"}, {"idtoken", "NULL"},
	{"password", "$1"}, {"passwordlastupdated", "now()"},
}

func (s *Scrubber) settingValue(v string) string {
	if s.Gen.jsonSettings() {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return v
}

// Apply runs the profile, then the custom SQL, in one transaction, and returns the changes.
func (s *Scrubber) Apply(ctx context.Context, conn *pgx.Conn) ([]Change, error) {
	if err := s.hashes(); err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return nil, err
	}
	sc, err := inspect(ctx, tx)
	if err != nil {
		return nil, err
	}
	var changes []Change
	exec := func(rule, what, table, q string, args ...any) error {
		if table != "" && !sc.tables[table] {
			changes = append(changes, Change{Rule: rule, What: "not applicable: no table " + table})
			return nil
		}
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("scrub rule %s: %w", rule, err)
		}
		changes = append(changes, Change{Rule: rule, Rows: tag.RowsAffected(), What: what})
		return nil
	}
	steps := []func() error{
		func() error {
			if s.Profile == "training" {
				return exec("jobs.all", "scheduled jobs disabled (all)", "jobconfiguration",
					`UPDATE jobconfiguration SET enabled = false WHERE enabled`)
			}
			return exec("jobs.outward", "outward-facing scheduled jobs disabled", "jobconfiguration",
				`UPDATE jobconfiguration SET enabled = false WHERE enabled AND (jobtype = ANY($1) OR jobtype LIKE '%EXPIRY_ALERT')`, outwardJobTypes)
		},
		func() error {
			return exec("settings.email", "email server settings removed", "systemsetting",
				`DELETE FROM systemsetting WHERE name = ANY($1)`, emailKeys)
		},
		func() error {
			return exec("settings.remote_instance", "remote instance URL and credentials removed", "systemsetting",
				`DELETE FROM systemsetting WHERE name = ANY($1)`, remoteKeys)
		},
		func() error {
			return exec("sms.systemsetting", "SMS gateway configuration (systemsetting keySmsSetting) removed", "systemsetting",
				`DELETE FROM systemsetting WHERE name = ANY($1)`, smsKeys)
		},
		func() error {
			return exec("sms.keyjsonvalue", "SMS gateway configuration (keyjsonvalue sms-config) removed", "keyjsonvalue",
				`DELETE FROM keyjsonvalue WHERE namespace = 'sms-config'`)
		},
		func() error {
			return exec("aggregatedataexchange.targets", "external target servers and credentials of aggregate data exchanges removed", "aggregatedataexchange",
				`UPDATE aggregatedataexchange SET target = target - 'api' WHERE target ? 'api'`)
		},
		func() error {
			return exec("route", "routes disabled, URL set to "+ScrubbedRouteURL+", auth and headers cleared", "route",
				`UPDATE route SET disabled = true, url = $1, auth = '{}'::jsonb, headers = '{}'::jsonb
				 WHERE NOT disabled OR url <> $1 OR coalesce(auth, '{}'::jsonb) <> '{}'::jsonb OR coalesce(headers, '{}'::jsonb) <> '{}'::jsonb`, ScrubbedRouteURL)
		},
		func() error {
			return exec("api_token", "API tokens deleted", "api_token", `DELETE FROM api_token`)
		},
		func() error { return s.banner(ctx, tx, sc, &changes) },
	}
	if s.Profile == "training" {
		steps = append(steps,
			func() error { return s.users(ctx, tx, sc, &changes) },
			func() error {
				return exec("previouspasswords", "previous password hashes deleted", "previouspasswords", `DELETE FROM previouspasswords`)
			})
	}
	steps = append([]func() error{func() error { return s.applyPII(ctx, tx, &changes) }}, steps...)
	for _, st := range steps {
		if err := st(); err != nil {
			return nil, err
		}
	}
	for i, c := range s.CustomSQL {
		tag, err := tx.Exec(ctx, c.Text)
		if err != nil {
			return nil, fmt.Errorf("custom scrub_sql %d (%s): %w", i+1, c.Source, err)
		}
		changes = append(changes, Change{Rule: fmt.Sprintf("custom.%d", i+1), Rows: tag.RowsAffected(), What: "scrub_sql " + c.Source})
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing the scrub: %w", err)
	}
	return changes, nil
}

func (s *Scrubber) banner(ctx context.Context, tx pgx.Tx, sc *schema, changes *[]Change) error {
	if !sc.tables["systemsetting"] {
		return fmt.Errorf("scrub rule banner: the database has no systemsetting table")
	}
	var hasSeq bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('public.hibernate_sequence') IS NOT NULL`).Scan(&hasSeq); err != nil {
		return err
	}
	newID := `(SELECT coalesce(max(systemsettingid), 0) + 1 FROM systemsetting)`
	if hasSeq {
		newID = `nextval('hibernate_sequence')`
	}
	var n int64
	for _, kv := range [][2]string{{"applicationTitle", s.Title()}, {"keyApplicationNotification", s.Banner()}} {
		v := s.settingValue(kv[1])
		tag, err := tx.Exec(ctx, `UPDATE systemsetting SET value = $2 WHERE name = $1`, kv[0], v)
		if err != nil {
			return fmt.Errorf("scrub rule banner: %w", err)
		}
		if tag.RowsAffected() == 0 {
			tag, err = tx.Exec(ctx, `INSERT INTO systemsetting (systemsettingid, name, value) VALUES (`+newID+`, $1, $2)`, kv[0], v)
			if err != nil {
				return fmt.Errorf("scrub rule banner: %w", err)
			}
		}
		n += tag.RowsAffected()
	}
	*changes = append(*changes, Change{Rule: "banner", Rows: n, What: "application title and notification say " + s.Label() + " with set " + s.SetID})
	return nil
}

func (s *Scrubber) users(ctx context.Context, tx pgx.Tx, sc *schema, changes *[]Change) error {
	cols := sc.columns["userinfo"]
	if cols == nil {
		return fmt.Errorf("scrub rule users: the database has no userinfo table (DHIS2 before 2.38?)")
	}
	var set []string
	for _, u := range userScrub {
		if cols[u.col] {
			set = append(set, pg.QuoteIdent(u.col)+" = "+u.expr)
		}
	}
	keep := s.KeepAccounts
	if keep == nil {
		keep = []string{}
	}
	tag, err := tx.Exec(ctx, `UPDATE userinfo SET `+strings.Join(set, ", ")+` WHERE NOT (username = ANY($2))`, s.unusableHash, keep)
	if err != nil {
		return fmt.Errorf("scrub rule users.anonymised: %w", err)
	}
	*changes = append(*changes, Change{Rule: "users.anonymised", Rows: tag.RowsAffected(),
		What: "names, contacts, messaging handles, 2FA secrets, OpenID/LDAP ids and tokens cleared; passwords reset to an unknown one"})
	if len(keep) > 0 {
		kset := []string{"password = $1"}
		for _, c := range []string{"passwordlastupdated = now()", "disabled = false", "accountexpiry = NULL", "secret = NULL",
			"twofactortype = 'NOT_ENABLED'", "restoretoken = NULL", "restoreexpiry = NULL", "externalauth = false"} {
			if cols[strings.Fields(c)[0]] {
				kset = append(kset, c)
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE userinfo SET `+strings.Join(kset, ", ")+` WHERE username = ANY($2)`, s.keepHash, keep)
		if err != nil {
			return fmt.Errorf("scrub rule users.keep_accounts: %w", err)
		}
		*changes = append(*changes, Change{Rule: "users.keep_accounts", Rows: tag.RowsAffected(),
			What: "kept accounts enabled with the password of keep_password_file, 2FA off"})
	}
	return nil
}

// Verify runs the verification queries on a scrubbed database.
func (s *Scrubber) Verify(ctx context.Context, conn *pgx.Conn) ([]Check, error) {
	sc, err := inspect(ctx, conn)
	if err != nil {
		return nil, err
	}
	var checks []Check
	count := func(rule, table, detail, q string, args ...any) error {
		if table != "" && !sc.tables[table] {
			checks = append(checks, Check{Rule: rule, OK: true, Detail: "not applicable: no table " + table})
			return nil
		}
		var n int64
		if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			return fmt.Errorf("verification %s: %w", rule, err)
		}
		c := Check{Rule: rule, OK: n == 0, Violations: n}
		if n > 0 {
			c.Detail = fmt.Sprintf("%d %s", n, detail)
		}
		checks = append(checks, c)
		return nil
	}
	notEmpty := `coalesce(value, '') NOT IN ('', '""', 'null')`
	type chk struct {
		rule, table, detail, q string
		args                   []any
	}
	list := []chk{
		{"jobs.outward", "jobconfiguration", "outward-facing jobs enabled",
			`SELECT count(*) FROM jobconfiguration WHERE enabled AND (jobtype = ANY($1) OR jobtype LIKE '%EXPIRY_ALERT')`, []any{outwardJobTypes}},
		{"settings.email", "systemsetting", "email server settings set",
			`SELECT count(*) FROM systemsetting WHERE name = ANY($1) AND ` + notEmpty, []any{emailKeys}},
		{"settings.remote_instance", "systemsetting", "remote instance settings set",
			`SELECT count(*) FROM systemsetting WHERE name = ANY($1) AND ` + notEmpty, []any{remoteKeys}},
		{"sms.systemsetting", "systemsetting", "SMS gateway settings set",
			`SELECT count(*) FROM systemsetting WHERE name = ANY($1) AND ` + notEmpty, []any{smsKeys}},
		{"sms.keyjsonvalue", "keyjsonvalue", "sms-config entries present",
			`SELECT count(*) FROM keyjsonvalue WHERE namespace = 'sms-config'`, nil},
		{"aggregatedataexchange.targets", "aggregatedataexchange", "exchanges still have an external target (api)",
			`SELECT count(*) FROM aggregatedataexchange WHERE target ? 'api' OR target::text ILIKE '%password%' OR target::text ILIKE '%accesstoken%'`, nil},
		{"route", "route", "routes enabled or still pointing outward / holding credentials",
			`SELECT count(*) FROM route WHERE NOT disabled OR url <> $1 OR coalesce(auth, '{}'::jsonb) <> '{}'::jsonb OR coalesce(headers, '{}'::jsonb) <> '{}'::jsonb`, []any{ScrubbedRouteURL}},
		{"api_token", "api_token", "API tokens present", `SELECT count(*) FROM api_token`, nil},
		{"banner", "systemsetting", "of applicationTitle/keyApplicationNotification do not name the copy and its set",
			`SELECT 2 - count(*) FROM systemsetting WHERE name IN ('applicationTitle', 'keyApplicationNotification') AND value LIKE $1 AND value LIKE $2`,
			[]any{"%" + s.Label() + "%", "%" + s.SetID + "%"}},
	}
	if s.Profile == "training" {
		list = append(list,
			chk{"jobs.all", "jobconfiguration", "jobs enabled", `SELECT count(*) FROM jobconfiguration WHERE enabled`, nil},
			chk{"previouspasswords", "previouspasswords", "previous password hashes present", `SELECT count(*) FROM previouspasswords`, nil})
	}
	for _, c := range list {
		if err := count(c.rule, c.table, c.detail, c.q, c.args...); err != nil {
			return nil, err
		}
	}
	pc, err := s.verifyPII(ctx, conn)
	if err != nil {
		return nil, err
	}
	checks = append(checks, pc...)
	if s.Profile == "training" {
		cs, err := s.verifyUsers(ctx, conn, sc)
		if err != nil {
			return nil, err
		}
		checks = append(checks, cs...)
	}
	return checks, nil
}

func (s *Scrubber) verifyUsers(ctx context.Context, conn *pgx.Conn, sc *schema) ([]Check, error) {
	cols := sc.columns["userinfo"]
	if cols == nil {
		return []Check{{Rule: "users.anonymised", Detail: "no userinfo table"}}, nil
	}
	var bad []string
	for _, u := range userScrub {
		if !cols[u.col] {
			continue
		}
		switch {
		case u.expr == "NULL":
			bad = append(bad, pg.QuoteIdent(u.col)+" IS NOT NULL")
		case u.col == "firstname":
			bad = append(bad, "firstname <> 'Anonymous'")
		case u.col == "twofactortype":
			bad = append(bad, "twofactortype <> 'NOT_ENABLED'")
		case u.col == "username":
			bad = append(bad, "username <> 'anon-' || userinfoid")
		}
	}
	keep := s.KeepAccounts
	if keep == nil {
		keep = []string{}
	}
	var n int64
	q := `SELECT count(*) FROM userinfo WHERE NOT (username = ANY($1)) AND (` + strings.Join(bad, " OR ") + `)`
	if err := conn.QueryRow(ctx, q, keep).Scan(&n); err != nil {
		return nil, fmt.Errorf("verification users.anonymised: %w", err)
	}
	// Every non-kept password must be the unusable one: no two users may share a real hash
	// with production. Checked as "at most one distinct hash among non-kept users".
	var hashes int64
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT password) FROM userinfo WHERE NOT (username = ANY($1))`, keep).Scan(&hashes); err != nil {
		return nil, fmt.Errorf("verification users.passwords: %w", err)
	}
	out := []Check{{Rule: "users.anonymised", OK: n == 0, Violations: n}}
	if n > 0 {
		out[0].Detail = fmt.Sprintf("%d users still hold personal data, secrets or tokens", n)
	}
	pw := Check{Rule: "users.passwords", OK: hashes <= 1}
	if hashes > 1 {
		pw.Violations, pw.Detail = hashes-1, fmt.Sprintf("%d distinct password hashes remain among non-kept users", hashes)
	}
	out = append(out, pw)
	for _, name := range s.KeepAccounts {
		c := Check{Rule: "users.keep_accounts:" + name}
		var hash *string
		var disabled *bool
		err := conn.QueryRow(ctx, `SELECT password, disabled FROM userinfo WHERE username = $1`, name).Scan(&hash, &disabled)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			c.Violations, c.Detail = 1, "no user "+name+" in the database (check keep_accounts)"
		case err != nil:
			return nil, fmt.Errorf("verification users.keep_accounts: %w", err)
		case hash == nil || bcrypt.CompareHashAndPassword([]byte(*hash), []byte(s.KeepPassword)) != nil:
			c.Violations, c.Detail = 1, "password is not the one in keep_password_file"
		case disabled != nil && *disabled:
			c.Violations, c.Detail = 1, "account is disabled"
		default:
			c.OK = true
		}
		out = append(out, c)
	}
	return out, nil
}

// Failed returns the failed checks.
func Failed(checks []Check) []Check {
	var out []Check
	for _, c := range checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}
