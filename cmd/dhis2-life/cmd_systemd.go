package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/sysunit"
	"github.com/dhis2-life/dhis2-life/internal/ui/render"
	"github.com/dhis2-life/dhis2-life/lifecycle/scheduler"
)

func cmdSystemd() *cli.Command {
	return &cli.Command{
		Name:  "systemd",
		Usage: "write systemd units derived from the configuration",
		Subcommands: []*cli.Command{{
			Name:  "unit",
			Usage: "write the daemon's service unit (and the schedule's timers) with a sandbox fitted to the config",
			Description: `Writes dhis2-life.service, which runs "dhis2-life daemon" as the service user, and
for every job in [schedule] the .timer/.service pair of "schedule print --systemd".
Enable the daemon or the timers, not both. Every service gets the same sandbox, derived
from the config: the file system is read-only (ProtectSystem=strict) except state_dir,
tuning.temp_dir, daemon.textfile_dir, a local repository and the directories holding
clone targets' dhis2_home (ReadWritePaths); the config directory and each instance's
dhis2_home are named in ReadOnlyPaths; ProtectHome=read-only when any of them lies under
/home (DHIS2's guide keeps DHIS2_HOME in /home/dhis/config), else ProtectHome=yes.
Hooks that run sudo turn off NoNewPrivileges; the sudoers lines they need are printed.
Problems to fix on the host (missing directories, wrong owners) are printed as warnings.

EXAMPLES:
   dhis2-life systemd unit --config /etc/dhis2-life/dhis2-life.toml --output /etc/systemd/system
   systemctl daemon-reload && systemctl enable --now dhis2-life
   dhis2-life systemd unit          # print the units instead of writing them`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config `FILE` (as the global --config)"},
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the units into `DIR` (e.g. /etc/systemd/system) instead of printing them"},
				&cli.StringFlag{Name: "bin", Usage: "dhis2-life binary `PATH` in ExecStart (default: this executable)"},
				&cli.StringFlag{Name: "user", Value: sysunit.DefaultUser, Usage: "service `USER` (and group)"},
				&cli.BoolFlag{Name: "no-timers", Usage: "write only the daemon's unit"},
				jsonFlag,
			},
			Action: func(c *cli.Context) error {
				cfg, err := config.Load(config.ResolvePath(c.String("config")))
				if err != nil {
					return err
				}
				bin := c.String("bin")
				if bin == "" {
					if bin, err = os.Executable(); err != nil {
						return err
					}
				}
				svc, sb, err := sysunit.Service(cfg, sysunit.Options{Bin: bin, User: c.String("user")})
				if err != nil {
					return usageErr("systemd unit: %v", err)
				}
				units := map[string]string{sysunit.ServiceName: svc}
				if !c.Bool("no-timers") {
					timers, err := scheduler.SystemdUnits(cfg, bin)
					if err != nil {
						return usageErr("%v", err)
					}
					for n, u := range timers {
						if filepath.Ext(n) == ".service" {
							u = sysunit.Harden(u, sb)
						}
						units[n] = u
					}
				}
				return writeUnits(c, units, sb)
			},
		}},
	}
}

func writeUnits(c *cli.Context, units map[string]string, sb *sysunit.Sandbox) error {
	names := make([]string, 0, len(units))
	for n := range units {
		names = append(names, n)
	}
	sort.Strings(names)
	w, ew := c.App.Writer, c.App.ErrWriter
	dir := c.String("output")
	if dir != "" {
		for _, n := range names {
			p := filepath.Join(dir, n)
			if err := os.WriteFile(p, []byte(units[n]), 0o644); err != nil {
				return fmt.Errorf("writing the unit: %w", err)
			}
		}
	}
	if c.Bool("json") {
		return render.JSON(w, map[string]any{"units": units, "read_only": sb.ReadOnly, "read_write": sb.ReadWrite,
			"protect_home": sb.ProtectHome, "sudoers": sb.SudoRules, "warnings": sb.Warnings, "dir": dir})
	}
	for _, n := range names {
		if dir != "" {
			fmt.Fprintf(w, "wrote %s\n", filepath.Join(dir, n))
		} else {
			fmt.Fprintf(w, "# ---- %s ----\n%s\n", n, units[n])
		}
	}
	for _, r := range sb.SudoRules {
		fmt.Fprintf(ew, "sudoers (visudo -f /etc/sudoers.d/dhis2-life): %s\n", r)
	}
	for _, warn := range sb.Warnings {
		fmt.Fprintf(ew, "warning: %s\n", warn)
	}
	if dir != "" {
		fmt.Fprintf(w, "next: systemctl daemon-reload && systemctl enable --now dhis2-life (or the .timer units instead)\n")
	}
	return nil
}
