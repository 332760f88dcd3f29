package crypt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// ParseRecipients parses age recipients given inline (e.g. "age1...") and in a recipients
// file (one per line, # comments). Errors name the offending entry.
func ParseRecipients(inline []string, file string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, s := range inline {
		s = strings.TrimSpace(s)
		rs, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil || len(rs) != 1 {
			return nil, fmt.Errorf("archive.recipients[%d] %q is not a valid age recipient (want an age1... public key from age-keygen -y): %v", i, short(s), unwrapParse(err))
		}
		out = append(out, rs...)
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading archive.recipients_file: %w", err)
		}
		defer f.Close()
		rs, err := age.ParseRecipients(f)
		if err != nil {
			return nil, fmt.Errorf("archive.recipients_file %s: %v (one age1... public key per line)", file, unwrapParse(err))
		}
		out = append(out, rs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no age recipients configured: set archive.recipients or archive.recipients_file")
	}
	return out, nil
}

// ReadIdentities reads age identities (AGE-SECRET-KEY-1... lines) from a file.
func ReadIdentities(file string) ([]age.Identity, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s holds no usable age identity (want AGE-SECRET-KEY-1... lines from age-keygen): %v", file, unwrapParse(err))
	}
	return ids, nil
}

// Encrypt returns a writer that encrypts to the recipients and writes to w; Close finishes
// the stream (it does not close w). Memory use is bounded (64 KiB chunks).
func Encrypt(w io.Writer, recipients []age.Recipient) (io.WriteCloser, error) {
	ew, err := age.Encrypt(w, recipients...)
	if err != nil {
		return nil, fmt.Errorf("starting age encryption: %w", err)
	}
	return ew, nil
}

// ErrWrongIdentity means none of the given identities can decrypt the stream.
var ErrWrongIdentity = errors.New("the identity does not match any recipient this was encrypted to")

// Decrypt returns a reader of the plaintext of an age stream. A stream not encrypted to any of
// the identities yields an error wrapping ErrWrongIdentity. Corruption is detected while
// reading (age authenticates every 64 KiB chunk).
func Decrypt(r io.Reader, identities []age.Identity) (io.Reader, error) {
	pr, err := age.Decrypt(r, identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%w (use the identity whose public key is in archive.recipients)", ErrWrongIdentity)
		}
		return nil, fmt.Errorf("not a readable age stream (corrupted or not an archive): %w", err)
	}
	return pr, nil
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// unwrapParse keeps age's parse errors short (they can quote whole lines).
func unwrapParse(err error) string {
	if err == nil {
		return "parsed to no recipient"
	}
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return msg
}
