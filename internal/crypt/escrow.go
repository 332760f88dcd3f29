package crypt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
)

// EscrowFormat is the escrow bundle format written by this version.
const EscrowFormat = 1

// EscrowFile is one file of the escrow bundle.
type EscrowFile struct {
	Role    string `json:"role"` // "config" | "password"
	Path    string `json:"path"` // where it lived on the host that wrote the bundle
	Content []byte `json:"content"`
}

// Escrow is what a fresh host needs, besides S3 credentials and an age identity, to reach the
// repository again: the repository password and the configuration.
type Escrow struct {
	Format  int          `json:"format"`
	Created time.Time    `json:"created"`
	Host    string       `json:"host"`
	Files   []EscrowFile `json:"files"`
}

// NewEscrow reads the config and password files into a bundle.
func NewEscrow(configPath, passwordFile string, now time.Time) (*Escrow, error) {
	host, _ := os.Hostname()
	e := &Escrow{Format: EscrowFormat, Created: now.UTC(), Host: host}
	for _, f := range []struct{ role, path string }{{"config", configPath}, {"password", passwordFile}} {
		if f.path == "" {
			return nil, fmt.Errorf("escrow: no %s file configured", f.role)
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("escrow: reading the %s file: %w", f.role, err)
		}
		e.Files = append(e.Files, EscrowFile{Role: f.role, Path: f.path, Content: b})
	}
	return e, nil
}

// Seal encrypts the bundle to the recipients.
func (e *Escrow) Seal(recipients []age.Recipient) ([]byte, error) {
	plain, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := Encrypt(&buf, recipients)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// OpenEscrow decrypts and decodes a bundle.
func OpenEscrow(r io.Reader, identities []age.Identity) (*Escrow, error) {
	pr, err := Decrypt(r, identities)
	if err != nil {
		return nil, fmt.Errorf("escrow bundle: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(pr, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("escrow bundle is corrupted: %w", err)
	}
	var e Escrow
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("escrow bundle is not valid: %w", err)
	}
	if e.Format < 1 || e.Format > EscrowFormat {
		return nil, fmt.Errorf("escrow bundle format %d is not supported (knows 1..%d): upgrade dhis2-life", e.Format, EscrowFormat)
	}
	return &e, nil
}

// ErrExists is returned by WriteBack when a file exists and overwrite is false.
var ErrExists = errors.New("file exists")

// WriteBack writes the bundle's files with mode 0600: into dir (by base name) when dir is not
// empty, else to their original paths. It refuses to replace existing files unless overwrite.
// It returns the paths written.
func (e *Escrow) WriteBack(dir string, overwrite bool) ([]string, error) {
	var paths []string
	for _, f := range e.Files {
		p := f.Path
		if dir != "" {
			p = filepath.Join(dir, filepath.Base(f.Path))
		}
		if _, err := os.Stat(p); err == nil && !overwrite {
			return nil, fmt.Errorf("%w: %s", ErrExists, p)
		}
		paths = append(paths, p)
	}
	for i, f := range e.Files {
		p := paths[i]
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, f.Content, 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p, err)
		}
		if err := os.Chmod(tmp, 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return paths, nil
}
