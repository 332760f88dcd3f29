package clone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/dhis2"
)

// Profiles are the built-in scrub profiles.
var Profiles = dhis2.Profiles

// ErrGeneration is returned for a DHIS2 schema generation the scrub profiles do not know.
var ErrGeneration = dhis2.ErrGeneration

// ErrProfile is returned for an unknown scrub profile.
var ErrProfile = errors.New("unknown scrub profile")

// ErrVerify is returned when a scrub verification query finds a rule not applied.
var ErrVerify = errors.New("scrub verification failed")

// Generation is a DHIS2 schema generation, e.g. 2.42.
type Generation = dhis2.Generation

// ParseGeneration returns the generation of a Flyway version ("2.42.17") and refuses those the
// scrub profiles were not written for.
func ParseGeneration(flyway string) (Generation, error) { return dhis2.ScrubGeneration(flyway) }

// ScrubbedRouteURL replaces every route URL: the .invalid TLD never resolves (RFC 2606).
const ScrubbedRouteURL = dhis2.ScrubbedRouteURL

// Change is what one scrub rule changed.
type Change = dhis2.Change

// Check is the result of one verification query.
type Check = dhis2.Check

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
	// Log receives the timings of the pseudonymisation's steps (nil: discarded).
	Log *slog.Logger

	keepHash, unusableHash string
	// piiDone are the changes of the pseudonymisation when it ran already on this database
	// during its restore (ApplyPII), before its indexes were built.
	piiDone []Change
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
	case dhis2.ProfileStaging, dhis2.ProfileTraining:
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

func (s *Scrubber) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
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

// scrub is what the rules need besides the database.
func (s *Scrubber) scrub() *dhis2.Scrub {
	return &dhis2.Scrub{Profile: s.Profile, Gen: s.Gen, Title: s.Title(), Banner: s.Banner(), Label: s.Label(), SetID: s.SetID,
		UnusableHash: s.unusableHash, KeepHash: s.keepHash, KeepPassword: s.KeepPassword, KeepAccounts: s.KeepAccounts}
}

// Apply runs the profile's rules, then the custom SQL, in one transaction, and returns the
// changes.
func (s *Scrubber) Apply(ctx context.Context, conn *pgx.Conn) ([]Change, error) {
	if err := s.hashes(); err != nil {
		return nil, err
	}
	tx, err := beginUnlimited(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	sc, err := dhis2.Inspect(ctx, tx)
	if err != nil {
		return nil, err
	}
	in := s.scrub()
	var changes []Change
	// Personal data first, before the profile's rules change users.
	if err := s.applyPII(ctx, tx, &changes, nil, nil); err != nil {
		return nil, err
	}
	for _, r := range dhis2.ScrubRules(s.Profile) {
		ch, err := r.Run(ctx, tx, sc, in)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ch...)
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

// ApplyPII pseudonymises personal data in its own transaction on a database being restored
// (after its data, before its indexes, constraints and triggers: restore.Options.AfterData),
// so that rewriting millions of rows maintains no index. Apply then records these changes
// instead of pseudonymising again.
//
// release, when not nil, hears each table ("public.name") the pseudonymisation is done with
// before it returns: at once the tables it never writes, and the large tables of the second
// connection once that committed (restore.Options.AfterData).
func (s *Scrubber) ApplyPII(ctx context.Context, conn *pgx.Conn, release func(table string)) ([]Change, error) {
	side, err := sideConnector(ctx, conn)
	if err != nil {
		return nil, err
	}
	tx, err := beginUnlimited(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	changes := []Change{}
	if err := s.applyPII(ctx, tx, &changes, side, release); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing the pseudonymisation: %w", err)
	}
	s.piiDone = changes
	return changes, nil
}

// Verify runs every rule's verification query on a scrubbed database.
func (s *Scrubber) Verify(ctx context.Context, conn *pgx.Conn) ([]Check, error) {
	sc, err := dhis2.Inspect(ctx, conn)
	if err != nil {
		return nil, err
	}
	in := s.scrub()
	var checks []Check
	for _, r := range dhis2.ScrubRules(s.Profile) {
		cs, err := r.Check(ctx, conn, sc, in)
		if err != nil {
			return nil, err
		}
		checks = append(checks, cs...)
	}
	pc, err := s.verifyPII(ctx, conn)
	if err != nil {
		return nil, err
	}
	checks = append(checks, pc...)
	return checks, nil
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

// beginUnlimited opens a transaction without a statement time limit (a scrub rewrites whole
// tables).
func beginUnlimited(ctx context.Context, conn *pgx.Conn) (pgx.Tx, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}
