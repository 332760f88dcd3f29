package lifecycle

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/app"
	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/crypt"
	"github.com/dhis2-life/dhis2-life/internal/proc"
	"github.com/dhis2-life/dhis2-life/internal/s3"
)

// EscrowObject is the escrow bundle's object name under archive.prefix.
const EscrowObject = "escrow/dhis2-life-escrow.age"

// EscrowRefresh seals the repository password and the config file to archive.recipients and
// stores them in the archive bucket; it returns the object name.
func EscrowRefresh(ctx context.Context, a *app.App) (string, error) {
	ac := a.Config.Archive
	if ac == nil {
		return "", usage("escrow needs an [archive] table with recipients (see `dhis2-life config example`)")
	}
	rs, err := crypt.ParseRecipients(ac.Recipients, ac.RecipientsFile)
	if err != nil {
		return "", usage("%v", err)
	}
	e, err := crypt.NewEscrow(a.Config.Path, a.Config.Repository.PasswordFile, time.Now())
	if err != nil {
		return "", err
	}
	sealed, err := e.Seal(rs)
	if err != nil {
		return "", err
	}
	b, err := archiveBucket(ctx, a)
	if err != nil {
		return "", err
	}
	name := ac.Prefix + EscrowObject
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	proc.KillAt("escrow:sealed")
	if err := b.PutSmall(pctx, name, sealed); err != nil {
		return "", err
	}
	proc.KillAt("escrow:stored")
	return name, nil
}

// EscrowRecoverRequest says where the bundle is and where its files go.
type EscrowRecoverRequest struct {
	// Identity is the age identity file.
	Identity string
	// Archive is the bucket (from the config's [archive] or the command line).
	Archive *config.Archive
	// Env holds S3 credentials besides the process environment.
	Env []string
	// To writes the files into this directory instead of their original paths.
	To    string
	Force bool
}

// EscrowRecovered is a recovered bundle: its escrow and the paths written (0600).
type EscrowRecovered struct {
	Escrow *crypt.Escrow
	Paths  []string
}

// EscrowRecover downloads the escrow bundle, decrypts it and writes the files back.
func EscrowRecover(ctx context.Context, q EscrowRecoverRequest) (*EscrowRecovered, error) {
	if q.Identity == "" {
		return nil, usage("escrow recover needs --identity FILE")
	}
	ids, err := crypt.ReadIdentities(q.Identity)
	if err != nil {
		return nil, usage("--identity: %v", err)
	}
	b, err := s3.NewArchiveBucket(q.Archive, append(os.Environ(), q.Env...))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rc, err := b.Get(ctx, q.Archive.Prefix+EscrowObject, "")
	if err != nil {
		return nil, fmt.Errorf("escrow bundle: %w (was `dhis2-life escrow refresh` or `init` run with [archive] configured?)", err)
	}
	defer rc.Close()
	e, err := crypt.OpenEscrow(rc, ids)
	if err != nil {
		return nil, err
	}
	paths, err := e.WriteBack(q.To, q.Force)
	if err != nil {
		return nil, err
	}
	return &EscrowRecovered{Escrow: e, Paths: paths}, nil
}
