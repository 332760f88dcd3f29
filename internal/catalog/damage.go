package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
)

// ErrDamaged is returned (wrapped) when the catalogue file is not a whole bbolt database:
// empty, truncated, or with broken meta pages.
var ErrDamaged = errors.New("the catalogue file is damaged")

// bbolt's on-disk meta page (go.etcd.io/bbolt, internal/common/meta.go): a 16-byte page
// header, then magic, version, page size, flags, root bucket (16), freelist, pgid, txid and
// an FNV-64a checksum of the fields before it.
const (
	boltMagic    = 0xED0CDAED
	boltVersion  = 2
	metaOffset   = 16
	metaSumStart = metaOffset
	metaSumEnd   = metaOffset + 56
)

type boltMeta struct {
	pageSize uint32
	freelist uint64
	pgid     uint64
	txid     uint64
}

// freelistPageFlag is bbolt's page type of the freelist; noFreelist marks a database that
// does not sync its freelist.
const (
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
)

func readMeta(b []byte) (boltMeta, bool) {
	if len(b) < metaSumEnd+8 {
		return boltMeta{}, false
	}
	le := binary.LittleEndian
	if le.Uint32(b[metaOffset:]) != boltMagic || le.Uint32(b[metaOffset+4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(b[metaSumStart:metaSumEnd])
	if h.Sum64() != le.Uint64(b[metaSumEnd:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(b[metaOffset+8:]), freelist: le.Uint64(b[metaOffset+32:]),
		pgid: le.Uint64(b[metaOffset+40:]), txid: le.Uint64(b[metaOffset+48:])}, true
}

// Validate checks, without bbolt (which panics or faults on such files), that the file at
// path is a whole bbolt database: not empty, with a valid meta page, and as long as that
// meta page says. A missing file is fine (Open creates it).
func Validate(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening catalogue %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("inspecting catalogue %s: %w", path, err)
	}
	damaged := func(why string) error {
		return fmt.Errorf("catalogue %s: %w (%s): run `dhis2-life catalog rebuild`, which moves it aside and rebuilds the snapshot index from the repository", path, ErrDamaged, why)
	}
	size := fi.Size()
	if size == 0 {
		return damaged("it is empty (0 bytes); it is not taken as a new catalogue, which would drop drill history, keep marks and clone records without a word")
	}
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("reading catalogue %s: %w", path, err)
	}
	head = head[:n]
	m0, ok0 := readMeta(head)
	var m1 boltMeta
	ok1 := false
	for _, ps := range []int64{int64(m0.pageSize), int64(os.Getpagesize()), 4096} {
		if ps <= 0 || ps > 1<<20 || ok1 {
			continue
		}
		b := make([]byte, 4096)
		if k, err := f.ReadAt(b, ps); err == nil || k > metaSumEnd+8 {
			m1, ok1 = readMeta(b[:k])
		}
	}
	if !ok0 && !ok1 {
		return damaged(fmt.Sprintf("no valid bbolt meta page in its %d bytes", size))
	}
	m := m0
	if !ok0 || (ok1 && m1.txid > m0.txid) {
		m = m1
	}
	if want := int64(m.pgid) * int64(m.pageSize); size < want {
		return damaged(fmt.Sprintf("it is %d bytes but its last transaction needs %d: truncated", size, want))
	}
	// bbolt.Open panics on a bad freelist page while it holds the file lock: check it first.
	if m.freelist != noFreelist {
		if m.freelist < 2 || m.freelist >= m.pgid {
			return damaged(fmt.Sprintf("its freelist page %d is outside its %d pages", m.freelist, m.pgid))
		}
		hdr := make([]byte, 16)
		if _, err := f.ReadAt(hdr, int64(m.freelist)*int64(m.pageSize)); err != nil {
			return damaged(fmt.Sprintf("its freelist page %d cannot be read: %v", m.freelist, err))
		}
		le := binary.LittleEndian
		if le.Uint64(hdr) != m.freelist || le.Uint16(hdr[8:])&freelistPageFlag == 0 {
			return damaged(fmt.Sprintf("its freelist page %d is not a freelist page", m.freelist))
		}
	}
	return nil
}

// guard turns a panic or memory fault inside bbolt (a damaged file) into an error naming
// the file.
func guard(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("catalogue %s: %w (bbolt: %v): run `dhis2-life catalog rebuild`, which moves it aside and rebuilds the snapshot index from the repository", path, ErrDamaged, r)
	}
}

// SetAside moves a damaged catalogue file to <path>.damaged-<UTC time> (kept as evidence)
// and returns the new name; it returns "" when the file is missing or whole.
func SetAside(path string, now time.Time) (string, error) {
	err := Validate(path)
	if err == nil {
		var probe *Catalog
		probe, err = open(path, LockTimeout)
		if err == nil {
			err = probe.view(func(tx *bbolt.Tx) error {
				for cerr := range tx.Check() {
					return fmt.Errorf("catalogue %s: %w (%v)", path, ErrDamaged, cerr)
				}
				return nil
			})
			if err == nil {
				return "", nil
			}
		}
		if !errors.Is(err, ErrDamaged) {
			return "", err
		}
	}
	if !errors.Is(err, ErrDamaged) {
		return "", err
	}
	to := fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("moving the damaged catalogue %s aside: %w", path, err)
	}
	return to, nil
}

// faultsPanic makes memory faults in this goroutine (bbolt reading a truncated mmap)
// recoverable panics; call the returned function to restore the previous setting.
func faultsPanic() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}

// closeOnPanic closes db (releasing its file lock; bbolt has rolled the transaction back)
// when a damaged file made bbolt panic, and passes the panic on to guard.
func closeOnPanic(db *bbolt.DB) {
	if r := recover(); r != nil {
		_ = db.Close()
		panic(r)
	}
}
