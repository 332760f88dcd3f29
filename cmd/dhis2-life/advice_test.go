package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/clone"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/restore"
	"github.com/dhis2-life/dhis2-life/retention"
)

// TestAdvise: each refusal of a domain package gets the flag that overrides it, once, and
// keeps its identity and exit code; other errors pass unchanged.
func TestAdvise(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: database x holds 3 tables/views/sequences", restore.ErrNotEmpty), "; pass --force to replace it"},
		{fmt.Errorf("%w: /srv/x holds files; choose an empty directory", restore.ErrDirNotEmpty), "choose an empty directory or pass --force"},
		{fmt.Errorf("%w: database x has 1 other sessions (a): stop them", restore.ErrSessions), "stop them or pass --terminate"},
		{fmt.Errorf("cloning: %w", fmt.Errorf("%w: database x has sessions", clone.ErrSessions)), "or pass --terminate"},
		{fmt.Errorf("%w: database x of target t holds 2 tables", clone.ErrNotAClone), "pass --force"},
		{usageErr("%w", fmt.Errorf("instance hmis: %w: fix [retention]", retention.ErrKeepsNothing)), "fix [retention] or pass --allow-empty"},
		{fmt.Errorf("%w: /etc/x", crypt.ErrExists), "(pass --force to replace it, or --to DIR)"},
	} {
		got := advise(c.err)
		if !errors.Is(got, c.err) || exitCode(got) != exitCode(c.err) {
			t.Errorf("%v: advice lost the error or its exit code", c.err)
		}
		if !strings.HasPrefix(got.Error(), c.err.Error()) || !strings.Contains(got.Error(), c.want) || strings.Count(got.Error(), "--") != 1+strings.Count(c.err.Error(), "--") && !strings.Contains(c.want, "--to") {
			t.Errorf("advise(%q) = %q, want it to add %q", c.err, got, c.want)
		}
	}
	plain := errors.New("restic: wrong password")
	if got := advise(plain); got != plain {
		t.Errorf("unrelated error changed: %v", got)
	}
}

// TestNoFlagAdviceInDomainPackages: only cmd/ names flags in errors.
func TestNoFlagAdviceInDomainPackages(t *testing.T) {
	for _, dir := range []string{"snapshot", "restore", "clone", "retention", "internal"} {
		err := filepath.WalkDir(filepath.Join("..", "..", dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			// internal/ui/render is the CLI's own renderer (cmd/ calls it): naming flags is its job.
			if strings.Contains(filepath.ToSlash(p), "internal/ui/render/") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i, l := range strings.Split(string(b), "\n") {
				for _, f := range []string{"pass --force", "pass --terminate", "pass --allow-empty", "or --terminate", "or --force"} {
					if strings.Contains(l, f) {
						t.Errorf("%s:%d tells the user to %q; return a typed error and add the advice in advice.go", p, i+1, f)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
