// Command dhis2-life takes encrypted, deduplicated snapshot sets of DHIS2 instances
// (PostgreSQL + file store) into a restic repository, restores them, and proves them with
// restore drills.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/lifecycle"
	"github.com/dhis2-life/dhis2-life/retention"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (documented in README.md and `dhis2-life --help`).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitVerify   = 3
	exitInterrup = 130
)

// exitError carries an exit code through urfave/cli.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var ee *exitError
	var ce *config.Error
	var ue *lifecycle.UsageError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce), errors.As(err, &ue), errors.Is(err, retention.ErrKeepsNothing),
		errors.Is(err, clone.ErrProfile), errors.Is(err, clone.ErrUnknownTarget):
		return exitUsage
	case errors.Is(err, lifecycle.ErrDrillFailed), errors.Is(err, clone.ErrVerify):
		return exitVerify
	case errors.Is(err, context.Canceled), errors.Is(err, restic.ErrInterrupted):
		return exitInterrup
	}
	return exitFailure
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := newApp(stdout, stderr)
	err := a.RunContext(ctx, interspersed(a, args))
	if err == nil {
		return exitOK
	}
	err = advise(err)
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "\n", " ")
	fmt.Fprintf(stderr, "dhis2-life: %s\n", msg)
	return exitCode(err)
}

const exitCodesHelp = `EXIT CODES:
   0  success
   1  the operation failed
   2  usage or configuration error
   3  verification found a problem (verify, status)
   130 interrupted`

func newApp(stdout, stderr io.Writer) *cli.App {
	cli.AppHelpTemplate = cli.AppHelpTemplate + "\n" + exitCodesHelp + "\n"
	a := &cli.App{
		Name:    "dhis2-life",
		Usage:   "snapshots, restore drills and clones for DHIS2 servers",
		Version: version,
		Description: `dhis2-life keeps encrypted, deduplicated snapshot sets of a DHIS2 instance
(PostgreSQL database + file store + manifest) in a restic repository on S3 or disk,
and proves them with restore drills.

EXAMPLES:
   dhis2-life config example > /etc/dhis2-life/dhis2-life.toml
   dhis2-life init
   dhis2-life snapshot
   dhis2-life snapshots
   dhis2-life verify latest
   dhis2-life restore latest --to-db postgres://dhis@127.0.0.1/dhis2_copy --files-to /srv/copy`,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config `FILE` (default $DHIS2_LIFE_CONFIG or " + config.DefaultPath + ")"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageErr("%v (see --help)", err)
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr("unknown command %q (see dhis2-life --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			cmdInit(), cmdSnapshot(), cmdSnapshots(), cmdRestore(), cmdVerify(),
			cmdCatalog(), cmdConfig(), cmdUnlock(), cmdInternal(),
			cmdDaemon(), cmdStatus(), cmdNotify(), cmdMunin(), cmdSchedule(), cmdClone(), cmdClones(),
			cmdRetention(), cmdArchive(), cmdArchives(), cmdKeep(), cmdUnkeep(), cmdEscrow(), cmdExport(),
			cmdSystemd(), cmdGendoc(), cmdWAL(), cmdBaseBackup(),
			cmdPoint(), cmdPoints(), cmdUpgrade(), cmdUpgrades(),
		},
	}
	for _, c := range a.Commands {
		setUsageErr(c)
	}
	return a
}

func setUsageErr(c *cli.Command) {
	c.OnUsageError = func(ctx *cli.Context, err error, isSubcommand bool) error {
		return usageErr("%s: %v (see dhis2-life %s --help)", c.Name, err, c.Name)
	}
	for _, s := range c.Subcommands {
		setUsageErr(s)
	}
}

// logger builds the process logger from global flags.
func logger(c *cli.Context) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	w := c.App.ErrWriter
	if c.String("log-format") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// load reads the configuration and assembles the app.
func load(c *cli.Context) (*app.App, error) {
	path := config.ResolvePath(c.String("config"))
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	a, err := app.New(cfg, logger(c))
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return a, nil
}

// interspersed lets flags follow positional arguments, as the documented syntax
// `dhis2-life restore ID|latest --to-db DSN` does: urfave/cli v2 stops parsing flags at the
// first positional argument, so the command's positional arguments are moved after its flags.
func interspersed(a *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := skipFlags(a.Flags, args, 1, &out)
	cmds := a.Commands
	var cmd *cli.Command
	for i < len(args) {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cmd = next
		out = append(out, args[i])
		i++
		if len(cmd.Subcommands) == 0 {
			break
		}
		i = skipFlags(cmd.Flags, args, i, &out)
		cmds = cmd.Subcommands
	}
	if cmd == nil || cmd.SkipFlagParsing {
		return append(out, args[i:]...)
	}
	var flags, positional []string
	for i < len(args) {
		arg := args[i]
		if arg == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if len(arg) > 1 && strings.HasPrefix(arg, "-") {
			flags = append(flags, arg)
			if takesValue(cmd.Flags, arg) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		} else {
			positional = append(positional, arg)
		}
		i++
	}
	out = append(out, flags...)
	return append(out, positional...)
}

// skipFlags copies the flags (with values) starting at args[i] to out and returns the index
// of the first non-flag argument.
func skipFlags(fs []cli.Flag, args []string, i int, out *[]string) int {
	for i < len(args) && len(args[i]) > 1 && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		*out = append(*out, args[i])
		if takesValue(fs, args[i]) && i+1 < len(args) {
			*out = append(*out, args[i+1])
			i++
		}
		i++
	}
	return i
}

// takesValue reports whether arg ("--name" or "-n", without "=value") names a flag that
// takes a separate value.
func takesValue(fs []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range fs {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
