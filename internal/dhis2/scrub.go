package dhis2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// Scrub profiles.
const (
	ProfileStaging  = "staging"
	ProfileTraining = "training"
)

// Profiles are the built-in scrub profiles.
var Profiles = []string{ProfileStaging, ProfileTraining}

// ScrubbedRouteURL replaces every route URL: the .invalid TLD never resolves (RFC 2606).
const ScrubbedRouteURL = "https://scrubbed.invalid/"

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

// Scrub is one application of a profile: what the rules need besides the database.
type Scrub struct {
	Profile string
	Gen     Generation
	// Title and Banner are the applicationTitle and keyApplicationNotification values; both
	// name Label (STAGING, TRAINING) and SetID, which the banner rule's check looks for.
	Title, Banner, Label, SetID string
	// UnusableHash is the bcrypt hash every anonymised account gets; KeepAccounts keep
	// KeepPassword (hashed as KeepHash).
	UnusableHash, KeepHash, KeepPassword string
	KeepAccounts                         []string
}

func (s *Scrub) keep() []string {
	if s.KeepAccounts == nil {
		return []string{}
	}
	return s.KeepAccounts
}

func (s *Scrub) settingValue(v string) string {
	if s.Gen.JSONSettings() {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return v
}

// Schema is what the scrub needs to know about the database.
type Schema struct {
	Tables  map[string]bool
	Columns map[string]map[string]bool // table → non-generated columns
}

// Inspect reads the tables and columns the scrub rules touch.
func Inspect(ctx context.Context, q pg.Querier) (*Schema, error) {
	sc := &Schema{Tables: map[string]bool{}, Columns: map[string]map[string]bool{}}
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
		sc.Tables[t] = true
		if sc.Columns[t] == nil {
			sc.Columns[t] = map[string]bool{}
		}
		sc.Columns[t][c] = true
	}
	return sc, rows.Err()
}

// ScrubRule is one rule of a scrub profile: the statement that applies it and the query that
// proves it, in one value so that neither can change without the other.
type ScrubRule struct {
	Name     string
	Profiles []string // the profiles that apply it
	// Table is the table the rule touches; without it the rule is not applicable.
	Table string
	// SQL rules: Apply is the statement (What says what it did) and Verify counts the rows
	// that still break the rule (Violation says what such a row is); Args are both's $n.
	Apply, What, Verify, Violation string
	Args                           func(*Scrub) []any
	// Rules whose statements depend on the schema (which userinfo columns exist) or need
	// more than one statement implement both sides in Go instead.
	ApplyFunc  func(ctx context.Context, tx pgx.Tx, sc *Schema, s *Scrub) ([]Change, error)
	VerifyFunc func(ctx context.Context, q pg.Querier, sc *Schema, s *Scrub) ([]Check, error)
}

func (r ScrubRule) args(s *Scrub) []any {
	if r.Args == nil {
		return nil
	}
	return r.Args(s)
}

// Validate fails for a rule that lacks its apply side or its verification.
func (r ScrubRule) Validate() error {
	if r.Name == "" || len(r.Profiles) == 0 {
		return errors.New("scrub rule without a name or profiles")
	}
	if (r.Apply == "" || r.What == "") && r.ApplyFunc == nil {
		return fmt.Errorf("scrub rule %s has no apply statement", r.Name)
	}
	if (r.Verify == "" || r.Violation == "") && r.VerifyFunc == nil {
		return fmt.Errorf("scrub rule %s has no verification query", r.Name)
	}
	return nil
}

// Run applies the rule in tx.
func (r ScrubRule) Run(ctx context.Context, tx pgx.Tx, sc *Schema, s *Scrub) ([]Change, error) {
	if r.Table != "" && !sc.Tables[r.Table] {
		return []Change{{Rule: r.Name, What: "not applicable: no table " + r.Table}}, nil
	}
	if r.ApplyFunc != nil {
		return r.ApplyFunc(ctx, tx, sc, s)
	}
	tag, err := tx.Exec(ctx, r.Apply, r.args(s)...)
	if err != nil {
		return nil, fmt.Errorf("scrub rule %s: %w", r.Name, err)
	}
	return []Change{{Rule: r.Name, Rows: tag.RowsAffected(), What: r.What}}, nil
}

// Check runs the rule's verification.
func (r ScrubRule) Check(ctx context.Context, q pg.Querier, sc *Schema, s *Scrub) ([]Check, error) {
	if r.Table != "" && !sc.Tables[r.Table] {
		return []Check{{Rule: r.Name, OK: true, Detail: "not applicable: no table " + r.Table}}, nil
	}
	if r.VerifyFunc != nil {
		return r.VerifyFunc(ctx, q, sc, s)
	}
	var n int64
	if err := q.QueryRow(ctx, r.Verify, r.args(s)...).Scan(&n); err != nil {
		return nil, fmt.Errorf("verification %s: %w", r.Name, err)
	}
	c := Check{Rule: r.Name, OK: n == 0, Violations: n}
	if n > 0 {
		c.Detail = fmt.Sprintf("%d %s", n, r.Violation)
	}
	return []Check{c}, nil
}

var (
	both     = []string{ProfileStaging, ProfileTraining}
	staging  = []string{ProfileStaging}
	training = []string{ProfileTraining}
)

func constArgs(a ...any) func(*Scrub) []any { return func(*Scrub) []any { return a } }

const notEmpty = `coalesce(value, '') NOT IN ('', '""', 'null')`

// scrubRules are every profile's rules in the order they are applied and verified.
var scrubRules = []ScrubRule{
	{Name: "jobs.all", Profiles: training, Table: "jobconfiguration",
		Apply: `UPDATE jobconfiguration SET enabled = false WHERE enabled`, What: "scheduled jobs disabled (all)",
		Verify: `SELECT count(*) FROM jobconfiguration WHERE enabled`, Violation: "jobs enabled"},
	{Name: "jobs.outward", Profiles: staging, Table: "jobconfiguration", Args: constArgs(outwardJobTypes),
		Apply: `UPDATE jobconfiguration SET enabled = false WHERE enabled AND (jobtype = ANY($1) OR jobtype LIKE '%EXPIRY_ALERT')`,
		What:  "outward-facing scheduled jobs disabled",
		// In training, jobs.all's check is the stronger one.
		Verify:    `SELECT count(*) FROM jobconfiguration WHERE enabled AND (jobtype = ANY($1) OR jobtype LIKE '%EXPIRY_ALERT')`,
		Violation: "outward-facing jobs enabled"},
	{Name: "settings.email", Profiles: both, Table: "systemsetting", Args: constArgs(emailKeys),
		Apply: `DELETE FROM systemsetting WHERE name = ANY($1)`, What: "email server settings removed",
		Verify: `SELECT count(*) FROM systemsetting WHERE name = ANY($1) AND ` + notEmpty, Violation: "email server settings set"},
	{Name: "settings.remote_instance", Profiles: both, Table: "systemsetting", Args: constArgs(remoteKeys),
		Apply: `DELETE FROM systemsetting WHERE name = ANY($1)`, What: "remote instance URL and credentials removed",
		Verify: `SELECT count(*) FROM systemsetting WHERE name = ANY($1) AND ` + notEmpty, Violation: "remote instance settings set"},
	{Name: "sms.systemsetting", Profiles: both, Table: "systemsetting", Args: constArgs(smsKeys),
		Apply: `DELETE FROM systemsetting WHERE name = ANY($1)`, What: "SMS gateway configuration (systemsetting keySmsSetting) removed",
		Verify: `SELECT count(*) FROM systemsetting WHERE name = ANY($1) AND ` + notEmpty, Violation: "SMS gateway settings set"},
	{Name: "sms.keyjsonvalue", Profiles: both, Table: "keyjsonvalue",
		Apply: `DELETE FROM keyjsonvalue WHERE namespace = 'sms-config'`, What: "SMS gateway configuration (keyjsonvalue sms-config) removed",
		Verify: `SELECT count(*) FROM keyjsonvalue WHERE namespace = 'sms-config'`, Violation: "sms-config entries present"},
	{Name: "aggregatedataexchange.targets", Profiles: both, Table: "aggregatedataexchange",
		Apply:     `UPDATE aggregatedataexchange SET target = target - 'api' WHERE target ? 'api'`,
		What:      "external target servers and credentials of aggregate data exchanges removed",
		Verify:    `SELECT count(*) FROM aggregatedataexchange WHERE target ? 'api' OR target::text ILIKE '%password%' OR target::text ILIKE '%accesstoken%'`,
		Violation: "exchanges still have an external target (api)"},
	{Name: "route", Profiles: both, Table: "route", Args: constArgs(ScrubbedRouteURL),
		Apply: `UPDATE route SET disabled = true, url = $1, auth = '{}'::jsonb, headers = '{}'::jsonb
				 WHERE NOT disabled OR url <> $1 OR coalesce(auth, '{}'::jsonb) <> '{}'::jsonb OR coalesce(headers, '{}'::jsonb) <> '{}'::jsonb`,
		What:      "routes disabled, URL set to " + ScrubbedRouteURL + ", auth and headers cleared",
		Verify:    `SELECT count(*) FROM route WHERE NOT disabled OR url <> $1 OR coalesce(auth, '{}'::jsonb) <> '{}'::jsonb OR coalesce(headers, '{}'::jsonb) <> '{}'::jsonb`,
		Violation: "routes enabled or still pointing outward / holding credentials"},
	{Name: "api_token", Profiles: both, Table: "api_token",
		Apply: `DELETE FROM api_token`, What: "API tokens deleted",
		Verify: `SELECT count(*) FROM api_token`, Violation: "API tokens present"},
	{Name: "banner", Profiles: both, ApplyFunc: applyBanner,
		Args:      func(s *Scrub) []any { return []any{"%" + s.Label + "%", "%" + s.SetID + "%"} },
		Verify:    `SELECT 2 - count(*) FROM systemsetting WHERE name IN ('applicationTitle', 'keyApplicationNotification') AND value LIKE $1 AND value LIKE $2`,
		Violation: "of applicationTitle/keyApplicationNotification do not name the copy and its set"},
	{Name: "users.anonymised", Profiles: training, ApplyFunc: applyUsers, VerifyFunc: verifyUsers},
	{Name: "previouspasswords", Profiles: training, Table: "previouspasswords",
		Apply: `DELETE FROM previouspasswords`, What: "previous password hashes deleted",
		Verify: `SELECT count(*) FROM previouspasswords`, Violation: "previous password hashes present"},
}

// ScrubRules returns a profile's rules in order (nil for an unknown profile).
func ScrubRules(profile string) []ScrubRule {
	var out []ScrubRule
	for _, r := range scrubRules {
		if slices.Contains(r.Profiles, profile) {
			out = append(out, r)
		}
	}
	return out
}

func applyBanner(ctx context.Context, tx pgx.Tx, sc *Schema, s *Scrub) ([]Change, error) {
	if !sc.Tables["systemsetting"] {
		return nil, fmt.Errorf("scrub rule banner: the database has no systemsetting table")
	}
	var hasSeq bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('public.hibernate_sequence') IS NOT NULL`).Scan(&hasSeq); err != nil {
		return nil, err
	}
	newID := `(SELECT coalesce(max(systemsettingid), 0) + 1 FROM systemsetting)`
	if hasSeq {
		newID = `nextval('hibernate_sequence')`
	}
	var n int64
	for _, kv := range [][2]string{{"applicationTitle", s.Title}, {"keyApplicationNotification", s.Banner}} {
		v := s.settingValue(kv[1])
		tag, err := tx.Exec(ctx, `UPDATE systemsetting SET value = $2 WHERE name = $1`, kv[0], v)
		if err != nil {
			return nil, fmt.Errorf("scrub rule banner: %w", err)
		}
		if tag.RowsAffected() == 0 {
			tag, err = tx.Exec(ctx, `INSERT INTO systemsetting (systemsettingid, name, value) VALUES (`+newID+`, $1, $2)`, kv[0], v)
			if err != nil {
				return nil, fmt.Errorf("scrub rule banner: %w", err)
			}
		}
		n += tag.RowsAffected()
	}
	return []Change{{Rule: "banner", Rows: n, What: "application title and notification say " + s.Label + " with set " + s.SetID}}, nil
}

// userScrub is the anonymised value of each userinfo column (applied when the column exists)
// and, for the verification, the condition a row that still breaks it meets ("" = not
// checked: the value depends on the row or the time).
var userScrub = []struct{ col, expr, bad string }{
	{"firstname", "'Anonymous'", "firstname <> 'Anonymous'"},
	{"surname", "'User ' || userinfoid", ""},
	{"name", "'Anonymous User ' || userinfoid", ""}, // a plain column before it became generated
	{"username", "'anon-' || userinfoid", "username <> 'anon-' || userinfoid"},
	{"email", "NULL", ""}, {"verifiedemail", "NULL", ""}, {"emailverificationtoken", "NULL", ""},
	{"phonenumber", "NULL", ""}, {"whatsapp", "NULL", ""}, {"telegram", "NULL", ""}, {"twitter", "NULL", ""},
	{"skype", "NULL", ""}, {"facebookmessenger", "NULL", ""},
	{"jobtitle", "NULL", ""}, {"introduction", "NULL", ""}, {"gender", "NULL", ""}, {"birthday", "NULL", ""},
	{"nationality", "NULL", ""}, {"employer", "NULL", ""}, {"education", "NULL", ""}, {"interests", "NULL", ""},
	{"languages", "NULL", ""}, {"welcomemessage", "NULL", ""}, {"avatar", "NULL", ""},
	{"secret", "NULL", ""}, {"twofactortype", "'NOT_ENABLED'", "twofactortype <> 'NOT_ENABLED'"},
	{"openid", "NULL", ""}, {"ldapid", "NULL", ""}, {"externalauth", "false", ""},
	{"restoretoken", "NULL", ""}, {"restoreexpiry", "NULL", ""}, {"idtoken", "NULL", ""},
	{"password", "$1", ""}, {"passwordlastupdated", "now()", ""},
}

func applyUsers(ctx context.Context, tx pgx.Tx, sc *Schema, s *Scrub) ([]Change, error) {
	cols := sc.Columns["userinfo"]
	if cols == nil {
		return nil, fmt.Errorf("scrub rule users: the database has no userinfo table (DHIS2 before 2.38?)")
	}
	var set []string
	for _, u := range userScrub {
		if cols[u.col] {
			set = append(set, pg.QuoteIdent(u.col)+" = "+u.expr)
		}
	}
	tag, err := tx.Exec(ctx, `UPDATE userinfo SET `+strings.Join(set, ", ")+` WHERE NOT (username = ANY($2))`, s.UnusableHash, s.keep())
	if err != nil {
		return nil, fmt.Errorf("scrub rule users.anonymised: %w", err)
	}
	changes := []Change{{Rule: "users.anonymised", Rows: tag.RowsAffected(),
		What: "names, contacts, messaging handles, 2FA secrets, OpenID/LDAP ids and tokens cleared; passwords reset to an unknown one"}}
	if len(s.KeepAccounts) == 0 {
		return changes, nil
	}
	kset := []string{"password = $1"}
	for _, c := range []string{"passwordlastupdated = now()", "disabled = false", "accountexpiry = NULL", "secret = NULL",
		"twofactortype = 'NOT_ENABLED'", "restoretoken = NULL", "restoreexpiry = NULL", "externalauth = false"} {
		if cols[strings.Fields(c)[0]] {
			kset = append(kset, c)
		}
	}
	tag, err = tx.Exec(ctx, `UPDATE userinfo SET `+strings.Join(kset, ", ")+` WHERE username = ANY($2)`, s.KeepHash, s.keep())
	if err != nil {
		return nil, fmt.Errorf("scrub rule users.keep_accounts: %w", err)
	}
	return append(changes, Change{Rule: "users.keep_accounts", Rows: tag.RowsAffected(),
		What: "kept accounts enabled with the password of keep_password_file, 2FA off"}), nil
}

func verifyUsers(ctx context.Context, q pg.Querier, sc *Schema, s *Scrub) ([]Check, error) {
	cols := sc.Columns["userinfo"]
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
		case u.bad != "":
			bad = append(bad, u.bad)
		}
	}
	keep := s.keep()
	var n int64
	qs := `SELECT count(*) FROM userinfo WHERE NOT (username = ANY($1)) AND (` + strings.Join(bad, " OR ") + `)`
	if err := q.QueryRow(ctx, qs, keep).Scan(&n); err != nil {
		return nil, fmt.Errorf("verification users.anonymised: %w", err)
	}
	// Every non-kept password must be the unusable one: no two users may share a real hash
	// with production. Checked as "at most one distinct hash among non-kept users".
	var hashes int64
	if err := q.QueryRow(ctx, `SELECT count(DISTINCT password) FROM userinfo WHERE NOT (username = ANY($1))`, keep).Scan(&hashes); err != nil {
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
		err := q.QueryRow(ctx, `SELECT password, disabled FROM userinfo WHERE username = $1`, name).Scan(&hash, &disabled)
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
