package testenv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	//lint:ignore SA1019 restic's key format is Poly1305-AES, built on this primitive
	"golang.org/x/crypto/poly1305"
	"golang.org/x/crypto/scrypt"
)

// resticKeyFile is a restic key file (doc/design.rst, "Keys, Encryption and MAC").
type resticKeyFile struct {
	Created  string `json:"created"`
	Username string `json:"username"`
	Hostname string `json:"hostname"`
	KDF      string `json:"kdf"`
	N        int    `json:"N"`
	R        int    `json:"r"`
	P        int    `json:"p"`
	Salt     []byte `json:"salt"`
	Data     []byte `json:"data"`
}

// CheapResticKey replaces the only key of the local restic repository at repoDir (created by
// `restic init` with password) by one for the same password and master key whose scrypt cost
// is tiny, so that each later restic command skips the ~0.5 s key derivation restic calibrated
// at init. Only for test repositories holding nothing secret: the repository stays a normal
// restic repository that restic opens with the same password.
func CheapResticKey(repoDir, password string) error {
	keys, err := filepath.Glob(filepath.Join(repoDir, "keys", "*"))
	if err != nil || len(keys) != 1 {
		return fmt.Errorf("cheap restic key: want exactly one key in %s/keys, found %d (%v)", repoDir, len(keys), err)
	}
	raw, err := os.ReadFile(keys[0])
	if err != nil {
		return fmt.Errorf("cheap restic key: %w", err)
	}
	name, out, err := CheapResticKeyFile(raw, password)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, keys[0])
	}
	if err := os.WriteFile(filepath.Join(repoDir, "keys", name), out, 0o400); err != nil {
		return fmt.Errorf("cheap restic key: %w", err)
	}
	return os.Remove(keys[0])
}

// CheapResticKeyFile is CheapResticKey for one key file's content raw, wherever the repository
// is (a bucket): it returns the new key file and its name in keys/ (restic names a key file by
// the SHA-256 of its content). The caller stores it and removes the old one.
func CheapResticKeyFile(raw []byte, password string) (name string, out []byte, err error) {
	var kf resticKeyFile
	if err := json.Unmarshal(raw, &kf); err != nil || kf.KDF != "scrypt" {
		return "", nil, fmt.Errorf("cheap restic key: not a scrypt key file (%v)", err)
	}
	master, err := resticOpen(kf, password)
	if err != nil {
		return "", nil, err
	}
	nk := kf
	nk.N, nk.R, nk.P = 1024, 1, 1
	nk.Salt = make([]byte, 64)
	if _, err := rand.Read(nk.Salt); err != nil {
		return "", nil, err
	}
	dk, err := scrypt.Key([]byte(password), nk.Salt, nk.N, nk.R, nk.P, 64)
	if err != nil {
		return "", nil, err
	}
	if nk.Data, err = resticSeal(dk, master); err != nil {
		return "", nil, err
	}
	if out, err = json.Marshal(nk); err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(out)
	return hex.EncodeToString(sum[:]), out, nil
}

// resticOpen decrypts a key file's data (IV ‖ AES-256-CTR ciphertext ‖ Poly1305-AES MAC).
func resticOpen(kf resticKeyFile, password string) ([]byte, error) {
	dk, err := scrypt.Key([]byte(password), kf.Salt, kf.N, kf.R, kf.P, 64)
	if err != nil {
		return nil, fmt.Errorf("cheap restic key: scrypt: %w", err)
	}
	d := kf.Data
	if len(d) < 32 {
		return nil, errors.New("cheap restic key: key data too short")
	}
	iv, ct, mac := d[:16], d[16:len(d)-16], d[len(d)-16:]
	want := resticMAC(dk[32:], iv, ct)
	if subtle.ConstantTimeCompare(want[:], mac) != 1 {
		return nil, errors.New("cheap restic key: wrong password for the repository key")
	}
	pt := make([]byte, len(ct))
	c, err := aes.NewCipher(dk[:32])
	if err != nil {
		return nil, err
	}
	cipher.NewCTR(c, iv).XORKeyStream(pt, ct)
	return pt, nil
}

func resticSeal(dk, pt []byte) ([]byte, error) {
	iv := make([]byte, 16)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	c, err := aes.NewCipher(dk[:32])
	if err != nil {
		return nil, err
	}
	ct := make([]byte, len(pt))
	cipher.NewCTR(c, iv).XORKeyStream(ct, pt)
	mac := resticMAC(dk[32:], iv, ct)
	return append(append(append([]byte{}, iv...), ct...), mac[:]...), nil
}

// resticMAC is Poly1305-AES: macKey is k (AES-128 key) ‖ r; the one-time key is r ‖ AES_k(iv).
func resticMAC(macKey, iv, msg []byte) [16]byte {
	var k [32]byte
	c, err := aes.NewCipher(macKey[:16])
	if err != nil {
		panic(err)
	}
	c.Encrypt(k[16:], iv)
	copy(k[:16], macKey[16:32])
	var out [16]byte
	poly1305.Sum(&out, msg, &k)
	return out
}

// ResticSnapshot is the part of a restic snapshot that WriteResticSnapshots writes.
type ResticSnapshot struct {
	Time     time.Time `json:"time"`
	Tree     string    `json:"tree"`
	Paths    []string  `json:"paths"`
	Hostname string    `json:"hostname"`
	Username string    `json:"username"`
	Tags     []string  `json:"tags,omitempty"`
}

// WriteResticSnapshots adds snapshots to the local restic repository at repoDir directly, as
// restic stores them (the JSON encrypted with the master key, named by the SHA-256 of the file),
// instead of one `restic backup` per snapshot. Tree must be a tree the repository holds (from a
// real backup). For tests that need many dated snapshots, such as forget policies.
func WriteResticSnapshots(repoDir, password string, snaps []ResticSnapshot) error {
	keys, err := filepath.Glob(filepath.Join(repoDir, "keys", "*"))
	if err != nil || len(keys) != 1 {
		return fmt.Errorf("restic snapshots: want exactly one key in %s/keys, found %d (%v)", repoDir, len(keys), err)
	}
	raw, err := os.ReadFile(keys[0])
	if err != nil {
		return fmt.Errorf("restic snapshots: %w", err)
	}
	var kf resticKeyFile
	if err := json.Unmarshal(raw, &kf); err != nil {
		return fmt.Errorf("restic snapshots: key file %s: %w", keys[0], err)
	}
	plain, err := resticOpen(kf, password)
	if err != nil {
		return err
	}
	var master struct {
		MAC struct {
			K []byte `json:"k"`
			R []byte `json:"r"`
		} `json:"mac"`
		Encrypt []byte `json:"encrypt"`
	}
	if err := json.Unmarshal(plain, &master); err != nil || len(master.Encrypt) != 32 || len(master.MAC.K) != 16 || len(master.MAC.R) != 16 {
		return fmt.Errorf("restic snapshots: unexpected master key (%v)", err)
	}
	key := append(append(append([]byte{}, master.Encrypt...), master.MAC.K...), master.MAC.R...)
	dir := filepath.Join(repoDir, "snapshots")
	for _, s := range snaps {
		body, err := json.Marshal(s)
		if err != nil {
			return err
		}
		ct, err := resticSeal(key, body)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(ct)
		if err := os.WriteFile(filepath.Join(dir, hex.EncodeToString(sum[:])), ct, 0o400); err != nil {
			return fmt.Errorf("restic snapshots: %w", err)
		}
	}
	return nil
}
