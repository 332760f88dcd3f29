package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Attr returns the process attributes of a child that must not outlive dhis2-life: the
// kernel sends it SIGKILL when its parent dies (even by SIGKILL). group puts the child in
// its own process group, so a cancellation can signal the child's own children too.
func Attr(group bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: group, Pdeathsig: syscall.SIGKILL}
}

// DieWithParent asks the kernel to SIGKILL this process when its parent dies; for processes
// dhis2-life does not start itself (restic starts the dump producer). It exits at once when
// the parent is already gone.
func DieWithParent() {
	ppid := os.Getppid()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	if os.Getppid() != ppid || ppid == 1 {
		os.Exit(1)
	}
}

// secretPrefixes name environment variables that hold storage credentials or repository
// secrets: PostgreSQL tools and the dump producer need none of them.
var secretPrefixes = []string{"AWS_", "RESTIC_", "MINIO_", "B2_", "AZURE_", "GOOGLE_", "OS_", "ST_", "RCLONE_"}

// IsSecretEnv reports whether the environment entry KEY=VALUE (or KEY) carries credentials.
func IsSecretEnv(kv string) bool {
	k, _, _ := strings.Cut(kv, "=")
	for _, p := range secretPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// CleanEnv returns env without the entries IsSecretEnv names.
func CleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !IsSecretEnv(kv) {
			out = append(out, kv)
		}
	}
	return out
}

// TempKinds are the kinds of per-run scratch entries dhis2-life creates in tuning.temp_dir:
// restore spools, drill copies of the file store (with dhis.conf), temporary passfiles and
// dump results.
var TempKinds = []string{"restore", "drill-files", "pgpass", "dump-result", "archive"}

// TempName is the pattern for os.MkdirTemp/os.CreateTemp of a per-run scratch entry:
// kind-<pid>-*, so Sweep can tell a dead run's leftovers from a running one's.
func TempName(kind string) string {
	return fmt.Sprintf("%s-%d-*", kind, os.Getpid())
}

// Sweep removes the entries of dir named kind-<pid>-… (for each kind) whose process is no
// longer alive: spools, file-store copies and passfiles of killed runs. It returns the
// removed paths. A PID that was reused keeps its entry until that process ends too.
func Sweep(dir string, kinds ...string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s for leftovers of killed runs: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, en := range ents {
		pid := ownerPID(en.Name(), kinds)
		if pid <= 0 || pid == os.Getpid() || Alive(pid) {
			continue
		}
		p := filepath.Join(dir, en.Name())
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

func ownerPID(name string, kinds []string) int {
	for _, k := range kinds {
		rest, ok := strings.CutPrefix(name, k+"-")
		if !ok {
			continue
		}
		num, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		if pid, err := strconv.Atoi(num); err == nil {
			return pid
		}
	}
	return 0
}

// Alive reports whether process pid exists (zombies count as dead).
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] == 'Z' {
		return false
	}
	return true
}

// KillAtEnv names the phase at which a test makes dhis2-life kill itself (see KillAt).
const KillAtEnv = "DHIS2_LIFE_TEST_KILL_AT"

// KillAt sends SIGKILL to this process when DHIS2_LIFE_TEST_KILL_AT equals phase: the fault
// suite's way to kill a job exactly at a phase boundary. Unset (always, outside the tests),
// it does nothing.
func KillAt(phase string) {
	if v, ok := os.LookupEnv(KillAtEnv); ok && v == phase {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is asynchronous: never run past the phase
	}
}
