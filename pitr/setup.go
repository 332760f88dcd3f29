package pitr

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
)

// Setting is one server setting `wal setup` manages.
type Setting struct {
	Name    string `json:"name"`
	Current string `json:"current"`
	Wanted  string `json:"wanted"`
	Change  bool   `json:"change"`
	// Restart is true when the new value only takes effect after a server restart.
	Restart bool `json:"restart"`
}

// SetupPlan is what `wal setup` shows and, with apply, does.
type SetupPlan struct {
	Instance       string    `json:"instance"`
	Settings       []Setting `json:"settings"`
	Applied        bool      `json:"applied"`
	RestartNeeded  bool      `json:"restart_needed"`
	ArchiveCommand string    `json:"archive_command"`
}

// ShellQuote quotes s for sh -c (PostgreSQL runs archive_command and restore_command with sh).
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command builds "BIN --config CFG wal SUB ARGS... --instance NAME" for archive_command or
// restore_command (PostgreSQL replaces %p and %f).
func Command(bin, cfgPath, instance, sub string, args ...string) string {
	parts := []string{ShellQuote(bin), "--config", ShellQuote(cfgPath), "--log-level", "warn", "wal", sub}
	parts = append(parts, args...)
	parts = append(parts, "--instance", ShellQuote(instance))
	return strings.Join(parts, " ")
}

// Setup compares archive_mode, archive_command, archive_timeout (and wal_level) with what WAL
// archiving into the repository needs; with apply it sets them with ALTER SYSTEM and reloads.
// archive_mode and wal_level changes need a restart, which Setup does not do.
func Setup(ctx context.Context, in *config.Instance, archiveCommand string, apply bool) (*SetupPlan, error) {
	if in.WAL == nil {
		return nil, fmt.Errorf("instance %s has no [instances.%s.wal] table: add one (see `dhis2-life config example`)", in.Name, in.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := adminConn(in).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var super bool
	if err := conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		return nil, err
	}
	plan := &SetupPlan{Instance: in.Name, ArchiveCommand: archiveCommand}
	wanted := []Setting{
		{Name: "wal_level", Wanted: "replica", Restart: true},
		{Name: "archive_mode", Wanted: "on", Restart: true},
		{Name: "archive_command", Wanted: archiveCommand},
		{Name: "archive_timeout", Wanted: fmt.Sprintf("%ds", int(in.WAL.ArchiveTimeout.Seconds()))},
	}
	for i := range wanted {
		s := &wanted[i]
		// The value in effect, plus a pending (ALTER SYSTEM'd, not yet restarted) one.
		var cur string
		var pending bool
		if err := conn.QueryRow(ctx, `SELECT setting || coalesce(unit, ''), pending_restart FROM pg_settings WHERE name = $1`, s.Name).Scan(&cur, &pending); err != nil {
			return nil, fmt.Errorf("reading %s: %w", s.Name, err)
		}
		s.Current = cur
		switch s.Name {
		case "wal_level":
			s.Change = cur == "minimal"
		case "archive_timeout":
			s.Change = cur != s.Wanted
		default:
			s.Change = cur != s.Wanted
		}
		if pending && s.Restart {
			plan.RestartNeeded = true
		}
	}
	plan.Settings = wanted
	if !apply {
		for _, s := range wanted {
			if s.Change && s.Restart {
				plan.RestartNeeded = true
			}
		}
		return plan, nil
	}
	if !super {
		return nil, fmt.Errorf("ALTER SYSTEM needs a superuser: set instances.%s.admin_database to a superuser connection", in.Name)
	}
	for _, s := range wanted {
		if !s.Change {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER SYSTEM SET "+s.Name+" = "+pg.QuoteLiteral(s.Wanted)); err != nil {
			return nil, fmt.Errorf("ALTER SYSTEM SET %s: %w", s.Name, err)
		}
		if s.Restart {
			plan.RestartNeeded = true
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return nil, fmt.Errorf("reloading the configuration: %w", err)
	}
	plan.Applied = true
	return plan, nil
}
