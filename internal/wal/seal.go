package wal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"
)

// magic starts every archived object: format version 1 (zstd, then XChaCha20-Poly1305).
const magic = "DL2WAL\x00\x01"

// Key derivation (stated in README.md, "Point-in-time recovery"): the 64 bytes
// HKDF-SHA256(secret = repository password without trailing newline, salt = keySalt,
// info = keyInfo) are split into a 32-byte XChaCha20-Poly1305 key and a 32-byte HMAC-SHA256 key.
// Whoever has the repository password (directly or from the escrow bundle) can rederive them.
const (
	keySalt = "dhis2-life wal archive"
	keyInfo = "dhis2-life/wal/v1 xchacha20poly1305+hmac-sha256"
)

// Keys are the WAL archive's encryption and integrity keys.
type Keys struct {
	enc [32]byte
	mac [32]byte
}

// DeriveKeys derives the keys from the repository password.
func DeriveKeys(password []byte) (*Keys, error) {
	password = bytes.TrimRight(password, "\r\n")
	if len(password) == 0 {
		return nil, errors.New("the repository password is empty: WAL keys are derived from it")
	}
	okm, err := hkdf.Key(sha256.New, password, []byte(keySalt), keyInfo, 64)
	if err != nil {
		return nil, fmt.Errorf("deriving WAL keys: %w", err)
	}
	k := &Keys{}
	copy(k.enc[:], okm[:32])
	copy(k.mac[:], okm[32:])
	return k, nil
}

// KeysFromPasswordFile reads the repository password file and derives the keys.
func KeysFromPasswordFile(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the repository password file for the WAL key: %w", err)
	}
	return DeriveKeys(b)
}

// MAC returns the hex HMAC-SHA256 of a WAL file's name and content: it identifies content
// without revealing it, so a second push can be compared without downloading.
func (k *Keys) MAC(name string, plain []byte) string {
	h := hmac.New(sha256.New, k.mac[:])
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(plain)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal compresses and encrypts a WAL file; the name is authenticated too, so an object cannot
// be passed off as another segment.
func (k *Keys) Seal(name string, plain []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	compressed := enc.EncodeAll(plain, nil)
	_ = enc.Close()
	aead, err := chacha20poly1305.NewX(k.enc[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(magic)+aead.NonceSize(), len(magic)+aead.NonceSize()+len(compressed)+aead.Overhead())
	copy(out, magic)
	nonce := out[len(magic):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, compressed, []byte(magic+name)), nil
}

// ErrAuth means an archived object does not decrypt: wrong key, other file, or tampered.
var ErrAuth = errors.New("archived WAL object fails authentication (wrong repository password, or the object was altered or belongs to another name)")

// Open decrypts and decompresses an object made by Seal for the same name.
func (k *Keys) Open(name string, obj []byte, maxSize int64) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.enc[:])
	if err != nil {
		return nil, err
	}
	if len(obj) < len(magic)+aead.NonceSize()+aead.Overhead() || string(obj[:len(magic)]) != magic {
		return nil, fmt.Errorf("%s: not a dhis2-life WAL object (bad header)", name)
	}
	nonce := obj[len(magic) : len(magic)+aead.NonceSize()]
	compressed, err := aead.Open(nil, nonce, obj[len(magic)+aead.NonceSize():], []byte(magic+name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrAuth)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(maxSize)))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	plain, err := dec.DecodeAll(compressed, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: decompressing: %w", name, err)
	}
	return plain, nil
}
