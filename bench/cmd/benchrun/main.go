// Command benchrun runs one benchmark step, times it and records the peak memory of every
// program in its process tree. It appends "NAME.KEY VALUE" lines to the metrics file:
//
//	NAME.wall_s              wall-clock seconds
//	NAME.rss_kb.PROG         largest VmHWM (peak RSS) of any single process named PROG
//	NAME.rss_sum_kb.PROG     largest sum, at one poll, of VmHWM over live processes named PROG
//	NAME.tree_maxrss_kb      ru_maxrss from wait4 (largest process of the whole tree, exact)
//	NAME.tree_cpu_s          user+system CPU seconds of the tree (wait4)
//	NAME.machine_busy        busy fraction of all CPUs during the step (/proc/stat), which also
//	                         counts PostgreSQL backends serving the step and anything else running
//	NAME.loadavg             1-minute load average at the end of the step
//
// Peak RSS per program comes from polling /proc/PID/status VmHWM (a high-water mark, so a
// poll every 25 ms only misses growth in a process's last 25 ms); the wait4 figure is exact but
// cannot tell programs apart (it is the largest of dhis2-life, restic, pg_dump, …).
//
//	benchrun -metrics m.txt -name snapshot -- dhis2-life snapshot --json
//
// The command's stdin, stdout and stderr are passed through; its exit code is benchrun's.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	metrics := flag.String("metrics", "", "file to append NAME.KEY VALUE lines to")
	name := flag.String("name", "", "measurement name")
	interval := flag.Duration("interval", 25*time.Millisecond, "/proc polling interval")
	flag.Parse()
	if *metrics == "" || *name == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchrun -metrics FILE -name NAME -- COMMAND [ARGS]")
		os.Exit(2)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signal.Ignore(os.Interrupt) // the child gets the terminal's SIGINT and decides
	busy0, total0 := cpuTicks()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
	peak := map[string]int64{}    // program → largest single VmHWM
	peakSum := map[string]int64{} // program → largest concurrent sum of VmHWM
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(*interval)
		defer t.Stop()
		for {
			sample(cmd.Process.Pid, peak, peakSum)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(start).Seconds()
	busy1, total1 := cpuTicks()
	close(done)
	code := 0
	if err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	var lines []string
	add := func(k string, v any) { lines = append(lines, fmt.Sprintf("%s.%s %v", *name, k, v)) }
	add("wall_s", strconv.FormatFloat(wall, 'f', 3, 64))
	add("exit", code)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		add("tree_maxrss_kb", ru.Maxrss)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		add("tree_cpu_s", strconv.FormatFloat(cpu, 'f', 3, 64))
	}
	if total1 > total0 {
		add("machine_busy", strconv.FormatFloat(float64(busy1-busy0)/float64(total1-total0), 'f', 3, 64))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			add("loadavg", f[0])
		}
	}
	progs := make([]string, 0, len(peak))
	for p := range peak {
		progs = append(progs, p)
	}
	sort.Strings(progs)
	for _, p := range progs {
		add("rss_kb."+p, peak[p])
		add("rss_sum_kb."+p, peakSum[p])
	}
	f, ferr := os.OpenFile(*metrics, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if ferr == nil {
		_, ferr = f.WriteString(strings.Join(lines, "\n") + "\n")
		if cerr := f.Close(); ferr == nil {
			ferr = cerr
		}
	}
	if ferr != nil {
		fmt.Fprintln(os.Stderr, "benchrun: metrics:", ferr)
		if code == 0 {
			code = 1
		}
	}
	fmt.Fprintf(os.Stderr, "benchrun: %s: %.1fs exit %d\n", *name, wall, code)
	os.Exit(code)
}

// sample finds the descendants of root and folds their VmHWM into peak and peakSum.
func sample(root int, peak, peakSum map[string]int64) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	sum := map[string]int64{}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		queue = append(queue, children[pid]...)
		name, hwm := status(pid)
		if name == "" {
			continue
		}
		if hwm > peak[name] {
			peak[name] = hwm
		}
		sum[name] += hwm
	}
	for n, v := range sum {
		if v > peakSum[n] {
			peakSum[n] = v
		}
	}
}

// cpuTicks returns busy and total jiffies of all CPUs from the first line of /proc/stat.
func cpuTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 8 || i == 9 { // guest, guest_nice are already in user, nice
			continue
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func status(pid int) (name string, hwmKB int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Name:"):
			name = strings.TrimSpace(line[5:])
		case strings.HasPrefix(line, "VmHWM:"):
			hwmKB, _ = strconv.ParseInt(strings.Fields(line[6:])[0], 10, 64)
		}
	}
	return name, hwmKB
}
