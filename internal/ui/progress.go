package ui

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// DefaultInterval is the minimum time between two progress log lines when not on a terminal.
const DefaultInterval = 30 * time.Second

// redrawEvery bounds how often the terminal line is redrawn.
const redrawEvery = 100 * time.Millisecond

// barWidth is the number of cells inside the bar's brackets.
const barWidth = 20

// Progress reports long work. On a terminal it redraws a single line
// "label [=====>    ]  45% 1.2 GiB/2.7 GiB 34.0 MiB/s ETA 45s msg"; otherwise it logs the same
// figures with slog.Info at most every Interval (and always for the first update and Done).
// Its methods are safe for concurrent use.
type Progress struct {
	// Interval is the minimum time between two log lines off a terminal (default
	// DefaultInterval). Set it before the first Update.
	Interval time.Duration
	// Now is the clock (default time.Now). Set it before the first Update.
	Now func() time.Time

	mu       sync.Mutex
	w        *os.File
	tty      bool
	logger   *slog.Logger
	label    string
	start    time.Time
	lastLog  time.Time
	lastDraw time.Time
	logged   bool
	drawn    bool
	done     bool
}

// NewProgress returns a Progress writing its bar to w when w is a terminal and logging to
// logger (nil: slog.Default()) otherwise. label names the work, e.g. "snapshot hmis".
func NewProgress(w *os.File, logger *slog.Logger, label string) *Progress {
	if logger == nil {
		logger = slog.Default()
	}
	return &Progress{Interval: DefaultInterval, Now: time.Now, w: w, tty: IsTerminal(w), logger: logger, label: label}
}

// figures are the numbers of one progress report.
type figures struct {
	done, total int64
	percent     float64 // <0: unknown
	rate        float64 // bytes/s, 0: unknown
	eta         time.Duration
	hasETA      bool
}

// Update reports progress: doneBytes of totalBytes (0 = unknown total), percent in 0..100
// (a negative value, or 0 with a known total, means: compute it from the bytes) and a short
// message such as the current table or file.
func (p *Progress) Update(doneBytes, totalBytes int64, percent float64, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.Now()
	if p.start.IsZero() {
		p.start = now
	}
	f := p.figures(now, doneBytes, totalBytes, percent)
	if p.tty {
		if p.drawn && now.Sub(p.lastDraw) < redrawEvery {
			return
		}
		p.lastDraw, p.drawn = now, true
		p.draw(p.line(f, msg))
		return
	}
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	if p.logged && now.Sub(p.lastLog) < interval {
		return
	}
	p.lastLog, p.logged = now, true
	p.logger.Info(p.label, f.attrs(msg)...)
}

// Done ends the report with a summary line (on a terminal it replaces the bar).
func (p *Progress) Done(summary string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	now := p.Now()
	elapsed := time.Duration(0)
	if !p.start.IsZero() {
		elapsed = now.Sub(p.start)
	}
	if p.tty {
		line := p.label + ": " + summary
		if elapsed > 0 {
			line += " (" + Duration(elapsed) + ")"
		}
		fmt.Fprint(p.w, "\r\x1b[K"+line+"\n")
		return
	}
	p.logger.Info(p.label+" done", "summary", summary, "elapsed", Duration(elapsed))
}

func (p *Progress) figures(now time.Time, done, total int64, percent float64) figures {
	f := figures{done: done, total: total, percent: percent}
	if (percent <= 0 && total > 0) || percent < 0 {
		f.percent = -1
		if total > 0 {
			f.percent = 100 * float64(done) / float64(total)
		}
	}
	f.percent = min(f.percent, 100)
	elapsed := now.Sub(p.start).Seconds()
	if elapsed >= 1 && done > 0 {
		f.rate = float64(done) / elapsed
	}
	switch {
	case total > 0 && f.rate > 0:
		f.eta, f.hasETA = time.Duration(float64(max(total-done, 0))/f.rate*float64(time.Second)), true
	case f.percent > 0 && elapsed >= 1:
		f.eta, f.hasETA = time.Duration(elapsed*(100-f.percent)/f.percent*float64(time.Second)), true
	}
	if f.hasETA {
		f.eta = f.eta.Round(time.Second)
	}
	return f
}

func (f figures) attrs(msg string) []any {
	a := []any{"done", Bytes(f.done)}
	if f.total > 0 {
		a = append(a, "total", Bytes(f.total))
	}
	if f.percent >= 0 {
		a = append(a, "percent", fmt.Sprintf("%.0f%%", f.percent))
	}
	if f.rate > 0 {
		a = append(a, "rate", Bytes(int64(f.rate))+"/s")
	}
	if f.hasETA {
		a = append(a, "eta", etaString(f.eta))
	}
	if msg != "" {
		// "step", not "msg": slog already writes the label as the line's msg.
		a = append(a, "step", msg)
	}
	return a
}

// line renders the terminal line for f.
func (p *Progress) line(f figures, msg string) string {
	var b strings.Builder
	if p.label != "" {
		b.WriteString(p.label + " ")
	}
	if f.percent >= 0 {
		b.WriteString(bar(f.percent) + fmt.Sprintf(" %3.0f%% ", f.percent))
	}
	b.WriteString(Bytes(f.done))
	if f.total > 0 {
		b.WriteString("/" + Bytes(f.total))
	}
	if f.rate > 0 {
		b.WriteString(" " + Bytes(int64(f.rate)) + "/s")
	}
	if f.hasETA {
		b.WriteString(" ETA " + etaString(f.eta))
	}
	if msg != "" {
		b.WriteString(" " + msg)
	}
	return b.String()
}

// bar renders "[=====>    ]" for percent in 0..100.
func bar(percent float64) string {
	n := int(percent / 100 * barWidth)
	n = max(0, min(n, barWidth))
	s := strings.Repeat("=", n)
	if n < barWidth {
		s += ">" + strings.Repeat(" ", barWidth-n-1)
	}
	return "[" + s + "]"
}

// draw replaces the terminal line with s, cut to the terminal width so it never wraps.
func (p *Progress) draw(s string) {
	if w, _, err := term.GetSize(int(p.w.Fd())); err == nil && w > 1 && utf8.RuneCountInString(s) > w-1 {
		s = string([]rune(s)[:w-1])
	}
	fmt.Fprint(p.w, "\r\x1b[K"+s)
}

// etaString formats an estimate in whole seconds below a minute ("45s"), like Duration above.
func etaString(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return Duration(d)
}
