package snapshot

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhis2-life/dhis2-life/internal/manifest"
	"golang.org/x/sys/unix"
)

// TestRelay: the relay passes the producer's stream through the named pipe and succeeds only
// when the producer's result holds a trailer; a producer's error, or a producer that died
// without a result, fails it (restic then stores nothing).
func TestRelay(t *testing.T) {
	setup := func(t *testing.T) (fifo, result string) {
		dir := t.TempDir()
		fifo, result = filepath.Join(dir, "stream.fifo"), filepath.Join(dir, "result.json")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		return fifo, result
	}
	writeResult := func(t *testing.T, path string, v any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("complete", func(t *testing.T) {
		fifo, result := setup(t)
		stream := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the pipe holds
		go func() {
			w := NewFIFOWriter(fifo) // opens at its first flush, as the producer does
			_, _ = w.Write(stream)
			_ = w.Flush()
			writeResult(t, result, manifest.Trailer{Snapshot: "00000003-1", Bytes: int64(len(stream))})
			_ = w.Close()
		}()
		var out bytes.Buffer
		if err := Relay(t.Context(), fifo, result, os.Getpid(), &out); err != nil {
			t.Fatalf("Relay: %v", err)
		}
		if !bytes.Equal(out.Bytes(), stream) {
			t.Fatalf("relayed %d bytes, want the %d the producer wrote", out.Len(), len(stream))
		}
	})

	t.Run("producer error before the pipe", func(t *testing.T) {
		fifo, result := setup(t)
		writeResult(t, result, map[string]string{"error": "dump of hmis failed: connecting: connection refused"})
		var out bytes.Buffer
		err := Relay(t.Context(), fifo, result, os.Getpid(), &out)
		if err == nil || !strings.Contains(err.Error(), "connection refused") || out.Len() != 0 {
			t.Fatalf("Relay = %v after %d bytes; want the producer's error", err, out.Len())
		}
	})

	t.Run("producer died mid-stream", func(t *testing.T) {
		fifo, result := setup(t)
		// A real process writes part of a stream into the pipe and dies without a result.
		cmd := exec.Command("sh", "-c", `printf 'PGDMP partial' > "$1"; kill -9 $$`, "sh", fifo)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		var out bytes.Buffer
		err := Relay(t.Context(), fifo, result, pid, &out)
		<-done
		if err == nil || !strings.Contains(err.Error(), "died without a result") {
			t.Fatalf("Relay = %v after %q; want a dead producer to fail the relay", err, out.String())
		}
	})
}
