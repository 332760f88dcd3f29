package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/restic"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newApp writes a configuration without repository.env_file for a repository in a new
// bucket of s3 and assembles the app from it.
func newApp(t *testing.T, s3 *testenv.MinIO) *app.App {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "repo.pass")
	if err := os.WriteFile(pw, []byte("env-credentials\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "dhis2")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "dhis2-life.toml")
	toml := fmt.Sprintf("state_dir = %q\n\n[repository]\nurl = %q\npassword_file = %q\nrestic = %q\n\n[instances.hmis]\ndatabase = \"postgres://dhis@127.0.0.1:1/dhis2\"\ndhis2_home = %q\n",
		filepath.Join(dir, "state"), s3.ResticRepo(s3.Bucket(t, "envcreds", false), "repo"), pw, testenv.Restic(t), home)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// initAndBackup runs the preflight, creates the repository and stores one snapshot in it.
func initAndBackup(t *testing.T, a *app.App) {
	t.Helper()
	ctx := context.Background()
	if err := a.Preflight(ctx); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	created, err := a.Repo.Init(ctx)
	if err != nil || !created {
		t.Fatalf("init: created %v, %v", created, err)
	}
	sum, err := a.Repo.BackupReader(ctx, "x", strings.NewReader("hello"), restic.BackupOptions{})
	if err != nil || sum.SnapshotID == "" {
		t.Fatalf("backup: %+v, %v", sum, err)
	}
	ok, err := a.Repo.Exists(ctx)
	if err != nil || !ok {
		t.Fatalf("repository exists: %v, %v", ok, err)
	}
}

// TestCredentialsFromEnvironment: with no repository.env_file, S3 keys given in the
// process environment reach restic (init, backup), as the preflight promises.
func TestCredentialsFromEnvironment(t *testing.T) {
	s3 := testenv.StartMinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	a := newApp(t, s3)
	if len(a.Env) != 0 {
		t.Fatalf("no env_file, yet env %v", a.Env)
	}
	initAndBackup(t, a)
}

// TestCredentialsFromResticChain: with no keys at all, the preflight does not refuse and
// restic finds them through its own chain (here AWS_PROFILE in a shared credentials file,
// whose default profile holds wrong keys).
func TestCredentialsFromResticChain(t *testing.T) {
	s3 := testenv.StartMinIO(t)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	creds := filepath.Join(t.TempDir(), "credentials")
	content := fmt.Sprintf("[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n[demo]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s3.AccessKey, s3.SecretKey)
	if err := os.WriteFile(creds, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "demo")
	initAndBackup(t, newApp(t, s3))
}
