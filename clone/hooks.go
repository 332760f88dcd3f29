package clone

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// RunHook runs argv (no shell) with a timeout, logging each output line. The whole process
// group is killed at the timeout.
func RunHook(ctx context.Context, log *slog.Logger, name string, argv []string, timeout time.Duration, env []string) error {
	if len(argv) == 0 {
		return nil
	}
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	log.Info("running hook", "hook", name, "argv", strings.Join(argv, " "), "timeout", timeout.String())
	t0 := time.Now()
	err := cmd.Run()
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		log.Info("hook output", "hook", name, "line", sc.Text())
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s %q timed out after %s (hook_timeout) and was killed", name, strings.Join(argv, " "), timeout)
		}
		return fmt.Errorf("%s %q failed: %v (its output is in the log)", name, strings.Join(argv, " "), err)
	}
	log.Info("hook done", "hook", name, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

func statMode(path string) (os.FileMode, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Mode().Perm(), nil
}
