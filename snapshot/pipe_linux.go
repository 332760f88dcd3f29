//go:build linux

package snapshot

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeBytes is the pipe buffer the producer asks for (Linux allows up to
// /proc/sys/fs/pipe-max-size, 1 MiB by default, to unprivileged processes).
const pipeBytes = 1 << 20

// WidenPipe enlarges f's pipe buffer from Linux's 64 KiB to 1 MiB when f is a pipe: the
// producer then writes its 256 KiB blocks without waiting for restic to drain each 64 KiB,
// so the two stall each other less. Not a pipe, or a smaller limit: nothing changes.
func WidenPipe(f *os.File) {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeBytes)
}
