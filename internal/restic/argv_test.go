package restic

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestSnapshotIDsNeverBecomeOptions: an ID from an edited manifest or catalogue that restic
// would parse as an option is refused before restic runs.
func TestSnapshotIDsNeverBecomeOptions(t *testing.T) {
	r := &Repo{Bin: "/nonexistent/restic", URL: t.TempDir(), PasswordFile: "/dev/null"}
	ctx := context.Background()
	for _, id := range []string{"--password-command=sh -c id", "-r", "", "abc def", "abc\x00", "a\nb"} {
		for name, err := range map[string]error{
			"dump":    r.Dump(ctx, id, "/manifest.json", io.Discard),
			"restore": r.Restore(ctx, id, t.TempDir(), nil),
			"forget":  r.Forget(ctx, "0123abcd", id),
		} {
			if err == nil || !strings.Contains(err.Error(), "is invalid") || !strings.Contains(err.Error(), "catalog rebuild") {
				t.Errorf("%s %q: %v", name, id, err)
			}
		}
	}
}

// TestBackupCompression: a backup's own --compression wins over the repository's.
func TestBackupCompression(t *testing.T) {
	for _, c := range []struct{ repo, backup, want string }{
		{"", "", ""}, {"auto", "", "auto"}, {"", "max", "max"}, {"auto", "max", "max"}, {"off", "better", "better"},
	} {
		r := &Repo{Compression: c.repo}
		args := strings.Join(r.backupArgs(BackupOptions{Compression: c.backup}), " ")
		got := ""
		if _, v, ok := strings.Cut(args, "--compression "); ok {
			got, _, _ = strings.Cut(v, " ")
		}
		if got != c.want || strings.Count(args, "--compression") > 1 {
			t.Errorf("repo %q, backup %q: args %q, want --compression %q once", c.repo, c.backup, args, c.want)
		}
	}
}
