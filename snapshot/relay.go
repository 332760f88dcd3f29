package snapshot

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"github.com/dhis2-life/dhis2-life/internal/proc"
)

// The database part can start its producer before restic: restic spends about half a second
// deriving the repository key and loading its index before it runs the command whose output it
// stores, and the producer's first table (datavalue, sorted by period) keeps PostgreSQL busy for
// as long again before its first row. Take then starts the producer itself, writing into a
// named pipe in its private temp directory, and restic runs the relay
// (`dhis2-life internal relay`), which copies the pipe to restic and exits non-zero unless the
// producer's result file says the stream is complete, so restic stores no snapshot of a
// failed dump, as with --stdin-from-command alone.

// relayBuffer is what the producer writes ahead into memory before the named pipe has a
// reader: the schema and the first rows of the first table.
const relayBuffer = 4 << 20

// FIFOWriter is the producer's end of the named pipe: it opens the pipe at its first flush
// (blocking until the relay opens it), so everything before is buffered in memory.
type FIFOWriter struct {
	path string
	f    *os.File
	bw   *bufio.Writer
}

// NewFIFOWriter returns the writer for the named pipe at path.
func NewFIFOWriter(path string) *FIFOWriter {
	w := &FIFOWriter{path: path}
	w.bw = bufio.NewWriterSize(fifoOpener{w}, relayBuffer)
	return w
}

type fifoOpener struct{ w *FIFOWriter }

func (o fifoOpener) Write(p []byte) (int, error) {
	if o.w.f == nil {
		f, err := os.OpenFile(o.w.path, os.O_WRONLY, 0)
		if err != nil {
			return 0, fmt.Errorf("opening the pipe to restic: %w", err)
		}
		WidenPipe(f)
		o.w.f = f
	}
	return o.w.f.Write(p)
}

// Write buffers p until the buffer is full, then writes into the pipe.
func (w *FIFOWriter) Write(p []byte) (int, error) { return w.bw.Write(p) }

// Flush writes what is buffered into the pipe (opening it when it has not been yet).
func (w *FIFOWriter) Flush() error { return w.bw.Flush() }

// Close closes the pipe (the relay then sees its end) without flushing: call Flush first.
func (w *FIFOWriter) Close() error {
	if w.f == nil {
		return nil
	}
	return w.f.Close()
}

// Relay copies the named pipe fifo to w until the producer (process producerPID) has closed
// it and left its result file: nil when the result holds a trailer, an error when it holds
// the producer's error or the producer died without one.
func Relay(ctx context.Context, fifo, result string, producerPID int, w io.Writer) error {
	// Non-blocking open: a producer that fails before it opens the pipe must not leave the
	// relay waiting for a writer; reads wait for data through Go's poller.
	f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("opening the producer's pipe: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("writing the stream to restic: %w", werr)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the producer's pipe: %w", err)
		}
		// No writer (not yet, or no more): the producer's result says which.
		if _, done, rerr := readResult(result); done {
			return rerr
		}
		if syscall.Kill(producerPID, 0) == syscall.ESRCH {
			if _, done, rerr := readResult(result); done {
				return rerr
			}
			return errors.New("the dump producer died without a result")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// readResult reads the producer's result file: done once it is written, then its trailer or
// the producer's error (or why the file holds neither).
func readResult(path string) (tr *manifest.Trailer, done bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil, false, nil
	}
	var r struct {
		Error string `json:"error"`
		manifest.Trailer
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, true, fmt.Errorf("the dump producer's result is not readable: %w", err)
	}
	if r.Error != "" {
		return nil, true, errors.New(r.Error)
	}
	if r.Snapshot == "" {
		return nil, true, errors.New("the dump producer's result holds no trailer")
	}
	return &r.Trailer, true, nil
}

// producerRun is a producer Take started; done closes once it exited and was reaped (so the
// relay, which watches its PID, sees it gone: an unreaped child would look alive).
type producerRun struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *tailWriter
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = w.buf[over:]
	}
	return len(p), nil
}

// lines returns the non-empty lines kept.
func (w *tailWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range strings.Split(string(w.buf), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// startProducer starts argv writing into the named pipe fifo, with the chunker polynomial
// (if any) in its environment and no credentials; its own process group, killed when
// dhis2-life dies.
func startProducer(ctx context.Context, argv []string, env []string) (*producerRun, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	for _, kv := range os.Environ() {
		if !proc.IsSecretEnv(kv) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	// Its error reaches Take through the result file; its warnings are logged by stop.
	tail := &tailWriter{max: 64 << 10}
	cmd.Stderr = tail
	cmd.SysProcAttr = proc.Attr(true)
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the dump producer: %w", err)
	}
	p := &producerRun{cmd: cmd, done: make(chan struct{}), stderr: tail}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop waits for the producer once restic is done with the stream; a producer still running
// then (restic failed before or while relaying, or it hangs after its result) is killed.
// After a stored stream, what the producer said on stderr (its warnings) is logged.
func (p *producerRun) stop(resticErr error, log *slog.Logger) {
	wait := 30 * time.Second
	if resticErr != nil {
		wait = 0
	}
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	if resticErr == nil {
		for _, l := range p.stderr.lines() {
			log.Warn("the dump producer warned", "said", l)
		}
	}
}
