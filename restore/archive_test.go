package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func tarOf(t *testing.T, entries ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := []byte("pwned\n")
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// TestExtractFilesStaysInside: a symlink in the tarball cannot carry a later entry outside
// FilesTo, whether through a directory symlink or by writing onto a file symlink.
func TestExtractFilesStaysInside(t *testing.T) {
	for name, entries := range map[string][]tar.Header{
		"through a directory symlink": {
			{Name: "files/link", Typeflag: tar.TypeSymlink, Linkname: "OUTSIDE"},
			{Name: "files/link/victim", Typeflag: tar.TypeReg, Mode: 0o644},
		},
		"onto a file symlink": {
			{Name: "files/victim", Typeflag: tar.TypeSymlink, Linkname: "OUTSIDE/victim"},
			{Name: "files/victim", Typeflag: tar.TypeReg, Mode: 0o644},
		},
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(outside, "victim")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for i := range entries {
				if entries[i].Typeflag == tar.TypeSymlink {
					entries[i].Linkname = filepath.Join(outside, filepath.Base(entries[i].Linkname))
					if filepath.Base(entries[i].Linkname) == "OUTSIDE" {
						entries[i].Linkname = outside
					}
				}
			}
			data := tarOf(t, entries...)
			o := &Options{FilesTo: filepath.Join(base, "restored"), Log: slog.New(slog.DiscardHandler),
				FilesFrom: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
			_ = extractFiles(context.Background(), o)
			if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
				t.Fatalf("a file outside FilesTo was overwritten: %q", b)
			}
		})
	}
}
