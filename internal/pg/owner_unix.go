package pg

import (
	"os"
	"syscall"
)

type owner struct{ uid, gid int }

// statOwner returns a file's owner, when the platform reports it.
func statOwner(fi os.FileInfo) (owner, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}, false
	}
	return owner{int(st.Uid), int(st.Gid)}, true
}
