package app

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/catalog"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/pg"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/s3"
)

// MinRestic is the oldest restic dhis2-life accepts (see config.MinRestic).
const MinRestic = config.MinRestic

// App is a configured dhis2-life.
type App struct {
	Config *config.Config
	Log    *slog.Logger
	Repo   *restic.Repo
	Env    []string // S3 credentials etc. from repository.env_file
	cat    *catalog.Catalog
}

// New builds an App from a loaded configuration.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	a := &App{Config: cfg, Log: log}
	// The repository password file is refused when others can read it, as the env file
	// and database password files are (a missing file is left to restic's own message:
	// `escrow recover` writes it).
	if p := cfg.Repository.PasswordFile; p != "" {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			if err := config.CheckSecretFile(p); err != nil {
				return nil, fmt.Errorf("repository.password_file: %w", err)
			}
		}
	}
	if cfg.Repository.EnvFile != "" {
		env, err := ReadEnvFile(cfg.Repository.EnvFile)
		if err != nil {
			return nil, err
		}
		a.Env = env
	}
	bin := cfg.Repository.Restic
	a.Repo = &restic.Repo{
		Bin: bin, URL: cfg.Repository.URL, PasswordFile: cfg.Repository.PasswordFile, Env: a.Env,
		Timeout: cfg.Repository.Timeout.Duration, OutageTimeout: cfg.Repository.OutageTimeout.Duration, CacheDir: filepath.Join(cfg.StateDir, "cache"),
		Compression: cfg.Tuning.Compression, PackSizeMB: cfg.Tuning.PackSizeMB, MemoryLimitMB: cfg.Tuning.ResticMemoryLimitMB, Logger: log,
	}
	return a, nil
}

// ReadEnvFile reads KEY=VALUE lines from a 0600 file (comments and blank lines ignored).
func ReadEnvFile(path string) ([]string, error) {
	if err := config.CheckSecretFile(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading env file: %w", err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.TrimPrefix(l, "export ")
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s:%d: not a KEY=VALUE line (fix the env file)", path, n)
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		env = append(env, strings.TrimSpace(k)+"="+v)
	}
	return env, sc.Err()
}

// Catalog opens the catalogue (once).
func (a *App) Catalog() (*catalog.Catalog, error) {
	if a.cat != nil {
		return a.cat, nil
	}
	if err := os.MkdirAll(a.Config.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state_dir %s: %w", a.Config.StateDir, err)
	}
	c, err := catalog.Open(catalog.Path(a.Config.StateDir))
	if err != nil {
		return nil, err
	}
	a.cat = c
	return c, nil
}

// LostWithCatalogue says what a catalogue set aside as damaged held that the repository
// does not: `catalog rebuild` cannot bring it back.
const LostWithCatalogue = "drill history, job runs, keep marks (run `dhis2-life keep ID` again), clone records (the clone databases remain; drop ones no longer wanted by hand), archive records (the archives remain in the archive bucket) and retention journals"

// CatalogForRebuild opens the catalogue for `catalog rebuild`: a damaged file is first moved
// aside to catalog.db.damaged-<time> (kept as evidence), whose name it returns.
func (a *App) CatalogForRebuild() (*catalog.Catalog, string, error) {
	if err := os.MkdirAll(a.Config.StateDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("creating state_dir %s: %w", a.Config.StateDir, err)
	}
	moved, err := catalog.SetAside(catalog.Path(a.Config.StateDir), time.Now())
	if err != nil {
		return nil, "", err
	}
	if moved != "" {
		a.Log.Warn("the catalogue was damaged: moved aside; the snapshot index is rebuilt from the repository, but what only the catalogue held is lost",
			"moved_to", moved, "lost", LostWithCatalogue)
	}
	c, err := a.Catalog()
	return c, moved, err
}

// Preflight checks in bounded time that restic is usable and, for S3 repositories, that
// the endpoint answers and accepts the credentials (restic itself retries for minutes).
func (a *App) Preflight(ctx context.Context) error {
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.Repo.CheckVersion(vctx, MinRestic); err != nil {
		return err
	}
	loc, isS3, err := s3.ParseResticURL(a.Config.Repository.URL)
	if err != nil {
		return err
	}
	if isS3 {
		creds := s3.CredentialsFromEnv(append(os.Environ(), a.Env...))
		if err := s3.Probe(ctx, loc, creds, 10*time.Second); err != nil {
			return fmt.Errorf("repository %s: %w", a.Config.Repository.URL, err)
		}
	}
	return nil
}

// InstanceConn returns the instance's database connection.
func InstanceConn(in *config.Instance) pg.Conn {
	return pg.Conn{DSN: in.Database, PasswordFile: in.DatabasePasswordFile}
}

// AdminConn returns the instance's admin connection, or nil when none is configured.
func AdminConn(in *config.Instance) *pg.Conn {
	if in.AdminDatabase == "" {
		return nil
	}
	return &pg.Conn{DSN: in.AdminDatabase, PasswordFile: in.AdminPasswordFile}
}
