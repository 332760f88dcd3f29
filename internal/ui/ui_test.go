package ui

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {512, "512 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{23*1024*1024 + 400*1024, "23.4 MiB"}, {1024*1024 - 1, "1.0 MiB"},
		{3 << 29, "1.5 GiB"}, {5 << 40, "5.0 TiB"}, {-2048, "-2.0 KiB"},
		{1<<63 - 1, "8.0 EiB"},
	}
	for _, tt := range tests {
		if got := Bytes(tt.in); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {450 * time.Millisecond, "450ms"}, {1200 * time.Millisecond, "1.2s"},
		{59 * time.Second, "59.0s"}, {59960 * time.Millisecond, "1m00s"},
		{3*time.Minute + 4*time.Second, "3m04s"}, {59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h00m"},
		{2*time.Hour + 5*time.Minute, "2h05m"}, {3*24*time.Hour + 4*time.Hour, "3d4h"},
		{-90 * time.Second, "-1m30s"},
	}
	for _, tt := range tests {
		if got := Duration(tt.in); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want string
	}{
		{now.Add(-12 * time.Second), "12s ago"},
		{now.Add(-5 * time.Minute), "5m ago"},
		{now.Add(-(3*time.Hour + 5*time.Minute)), "3h05m ago"},
		{now.Add(-(51 * time.Hour)), "2d3h ago"},
		{now.Add(5 * time.Minute), "in 5m"},
		{time.Time{}, "never"},
	}
	for _, tt := range tests {
		if got := Age(tt.t, now); got != tt.want {
			t.Errorf("Age(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestTable(t *testing.T) {
	tb := NewTable("ID", "TIME", "SIZE").RightAlign(2)
	tb.Row("20261127T020000Z-ab12", "2026-11-27 02:00", "1.5 GiB")
	tb.Row("x", "", "512 B")
	tb.Row("é", "short")
	var b bytes.Buffer
	if err := tb.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID                     TIME                 SIZE\n" +
		"20261127T020000Z-ab12  2026-11-27 02:00  1.5 GiB\n" +
		"x                                          512 B\n" +
		"é                      short\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(nil) {
		t.Errorf("a file is not a terminal")
	}
}

func TestProgressLogsRateLimited(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	clock := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	p := NewProgress(f, logger, "snapshot hmis")
	p.Interval = 30 * time.Second
	p.Now = func() time.Time { return clock }
	const total = 100 << 20
	for i := 0; i <= 100; i++ { // one update a second for 100 s, 1 MiB/s
		p.Update(int64(i)<<20, total, 0, "table datavalue")
		clock = clock.Add(time.Second)
	}
	p.Done("100.0 MiB in 1 set")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 5 { // t=0, 30, 60, 90, done
		t.Fatalf("got %d log lines, want 5:\n%s", len(lines), logs.String())
	}
	if want := `level=INFO msg="snapshot hmis" done="30.0 MiB" total="100.0 MiB" percent=30% rate="1.0 MiB/s" eta=1m10s step="table datavalue"`; lines[1] != want {
		t.Errorf("line 2 = %s\nwant      %s", lines[1], want)
	}
	if !strings.Contains(lines[4], `msg="snapshot hmis done" summary="100.0 MiB in 1 set" elapsed=1m41s`) {
		t.Errorf("done line = %s", lines[4])
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("non-terminal progress wrote %d bytes to the file", fi.Size())
	}
}

func TestProgressLine(t *testing.T) {
	start := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	p := &Progress{label: "restore", start: start}
	now := start.Add(40 * time.Second)
	f := p.figures(now, 1288490188, 2899102924, 45)
	got := p.line(f, "datavalue")
	want := "restore [=========>          ]  45% 1.2 GiB/2.7 GiB 30.7 MiB/s ETA 50s datavalue"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Unknown total and percent: no bar, no ETA.
	f = p.figures(now, 10<<20, 0, -1)
	if got := p.line(f, ""); got != "restore 10.0 MiB 256.0 KiB/s" {
		t.Errorf("unknown total: %q", got)
	}
	if got := bar(100); got != "[====================]" {
		t.Errorf("bar(100) = %q", got)
	}
	if got := bar(0); got != "[>                   ]" {
		t.Errorf("bar(0) = %q", got)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0 problems", 1: "1 problem", 2: "2 problems"} {
		if got := Count(n, "problem"); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
