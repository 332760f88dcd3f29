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
