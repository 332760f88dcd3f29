package snapshot

import (
	"bytes"
	"io"
)

// archiveHeadBytes is enough of a pg_dump custom archive to hold its creation time (magic,
// six version and size bytes, the compression field, seven integers of at most 1+8 bytes).
const archiveHeadBytes = 5 + 6 + 9 + 7*9

// fixedTime are the creation-time fields (tm_sec, tm_min, tm_hour, tm_mday, tm_mon,
// tm_year, tm_isdst) written into the schema archive: 2000-01-01 00:00:00.
var fixedTime = [7]int64{0, 0, 0, 1, 0, 100, 0}

// stableHead passes pg_dump's custom archive through, with the creation time in its header
// replaced by a fixed one (the real time is the manifest's). pg_dump writes the time of the
// dump into the archive's first bytes, which made the stream's first restic chunk new every
// day however little changed; pg_restore only prints it ("Archive created at"). A header it
// does not recognise is passed through unchanged.
type stableHead struct {
	w    io.Writer
	head []byte
	done bool
}

func (s *stableHead) Write(p []byte) (int, error) {
	if s.done {
		return s.w.Write(p)
	}
	n := len(p)
	s.head = append(s.head, p...)
	if len(s.head) < archiveHeadBytes {
		return n, nil
	}
	if err := s.flush(); err != nil {
		return 0, err
	}
	return n, nil
}

// Close writes what is still held back (an archive shorter than the header).
func (s *stableHead) Close() error {
	if s.done {
		return nil
	}
	return s.flush()
}

func (s *stableHead) flush() error {
	s.done = true
	fixHeadTime(s.head)
	_, err := s.w.Write(s.head)
	s.head = nil
	return err
}

// fixHeadTime rewrites the creation time of a custom-format archive header in place
// (pg_backup_archiver.c WriteHead: "PGDMP", major, minor, revision, intSize, offSize,
// format, then the compression — one byte from archive version 1.15, an integer before —
// then seven integers, each a sign byte and intSize little-endian bytes).
func fixHeadTime(b []byte) bool {
	if len(b) < 11 || !bytes.HasPrefix(b, []byte("PGDMP")) {
		return false
	}
	major, minor, intSize := b[5], b[6], int(b[8])
	if major != 1 || intSize < 1 || intSize > 8 || b[10] != 1 { // format 1 = custom
		return false
	}
	at := 11
	if minor >= 15 {
		at++
	} else {
		at += 1 + intSize
	}
	if len(b) < at+7*(1+intSize) {
		return false
	}
	for _, v := range fixedTime {
		b[at] = 0 // sign
		for i := 0; i < intSize; i++ {
			b[at+1+i] = byte(v >> (8 * i))
		}
		at += 1 + intSize
	}
	return true
}
