package wal

import (
	"fmt"
	"regexp"
	"strconv"
)

// Kinds of files PostgreSQL hands to archive_command.
const (
	KindSegment = "segment" // 000000010000000000000003
	KindPartial = "partial" // 000000010000000000000003.partial (end of an old timeline)
	KindBackup  = "backup"  // 000000010000000000000003.00000028.backup (backup history)
	KindHistory = "history" // 00000002.history (timeline history)
)

var (
	segmentRe = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$`)
	partialRe = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$`)
	backupRe  = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup$`)
	historyRe = regexp.MustCompile(`^([0-9A-F]{8})\.history$`)
)

// File is a parsed WAL archive file name.
type File struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Timeline uint32 `json:"timeline"`
	// Seg orders files of a timeline: log<<32 | seg from the name (0 for history files).
	Seg uint64 `json:"-"`
}

// ParseName checks that name is a file PostgreSQL archives and parses it. Anything else (paths,
// "..", lower case) is refused: names become object keys and file names.
func ParseName(name string) (File, error) {
	f := File{Name: name}
	var m []string
	switch {
	case segmentRe.MatchString(name):
		f.Kind, m = KindSegment, segmentRe.FindStringSubmatch(name)
	case partialRe.MatchString(name):
		f.Kind, m = KindPartial, partialRe.FindStringSubmatch(name)
	case backupRe.MatchString(name):
		f.Kind, m = KindBackup, backupRe.FindStringSubmatch(name)
	case historyRe.MatchString(name):
		f.Kind = KindHistory
		tli, _ := strconv.ParseUint(historyRe.FindStringSubmatch(name)[1], 16, 32)
		f.Timeline = uint32(tli)
		return f, nil
	default:
		return f, fmt.Errorf("%q is not a WAL file name (want e.g. 000000010000000000000003 or 00000002.history)", name)
	}
	tli, _ := strconv.ParseUint(m[1], 16, 32)
	log, _ := strconv.ParseUint(m[2], 16, 32)
	seg, _ := strconv.ParseUint(m[3], 16, 32)
	f.Timeline, f.Seg = uint32(tli), log<<32|seg
	return f, nil
}

// SegmentName returns the segment file name holding lsn on timeline tli for segments of
// segSize bytes (PostgreSQL's XLogFileName).
func SegmentName(tli uint32, lsn uint64, segSize uint64) string {
	segNo := lsn / segSize
	perLog := uint64(0x100000000) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segNo/perLog, segNo%perLog)
}

// ParseLSN parses "16/B374D848".
func ParseLSN(s string) (uint64, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("%q is not an LSN (want e.g. 0/3000028): %v", s, err)
	}
	return uint64(hi)<<32 | uint64(lo), nil
}

// FormatLSN formats an LSN as PostgreSQL does.
func FormatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn)) }

// validSegmentSize reports whether n is a size PostgreSQL allows for WAL segments
// (a power of two from 1 MB to 1 GB).
func validSegmentSize(n int64) bool {
	return n >= 1<<20 && n <= 1<<30 && n&(n-1) == 0
}
