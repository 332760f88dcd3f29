package crypt

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func TestRoundTripAndWrongIdentity(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	rs, err := ParseRecipients([]string{id.Recipient().String()}, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := Encrypt(&buf, rs)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("datavalue row\n"), 100000)
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Decrypt(bytes.NewReader(buf.Bytes()), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip differs: %v", err)
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := Decrypt(bytes.NewReader(buf.Bytes()), []age.Identity{other}); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("wrong identity: %v", err)
	}
	// A flipped byte in the body is detected while reading.
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)/2] ^= 1
	r, err = Decrypt(bytes.NewReader(bad), []age.Identity{id})
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Fatal("corruption not detected")
	}
}

func TestParseRecipientsErrors(t *testing.T) {
	for _, bad := range []string{"", "age1notakey", "ssh-ed25519 AAAA", "AGE-SECRET-KEY-1XYZ"} {
		_, err := ParseRecipients([]string{bad}, "")
		if err == nil || !strings.Contains(err.Error(), "not a valid age recipient") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseRecipients(nil, ""); err == nil {
		t.Error("no recipients accepted")
	}
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	f := filepath.Join(dir, "recipients")
	os.WriteFile(f, []byte("# ops team\n"+id.Recipient().String()+"\n"), 0o644)
	if rs, err := ParseRecipients(nil, f); err != nil || len(rs) != 1 {
		t.Fatalf("%v %v", rs, err)
	}
	os.WriteFile(f, []byte("garbage\n"), 0o644)
	if _, err := ParseRecipients(nil, f); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("bad file: %v", err)
	}
	idf := filepath.Join(dir, "id")
	os.WriteFile(idf, []byte("not an identity\n"), 0o600)
	if _, err := ReadIdentities(idf); err == nil {
		t.Fatal("bad identity file accepted")
	}
}

func TestEscrowWriteBack(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc", "dhis2-life.toml")
	pass := filepath.Join(dir, "etc", "repository.pass")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	os.WriteFile(cfg, []byte("state_dir = \"/x\"\n"), 0o600)
	os.WriteFile(pass, []byte("s3cret\n"), 0o600)
	id, _ := age.GenerateX25519Identity()
	e, err := NewEscrow(cfg, pass, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := e.Seal([]age.Recipient{id.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("password in the clear")
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := OpenEscrow(bytes.NewReader(sealed), []age.Identity{other}); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("wrong identity: %v", err)
	}
	got, err := OpenEscrow(bytes.NewReader(sealed), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "recovered")
	paths, err := got.WriteBack(to, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, st.Mode(), err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(to, "repository.pass")); string(b) != "s3cret\n" {
		t.Fatalf("password %q", b)
	}
	if _, err := got.WriteBack(to, false); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite without force: %v", err)
	}
}
