package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/notify/notifytest"
	"github.com/dhis2-life/dhis2-life/internal/testenv"
	"github.com/dhis2-life/dhis2-life/testdata/fixture"
)

type lockedBuf = testenv.LockedBuffer

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func metricValue(body, series string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestDaemon drives `dhis2-life daemon` with seconds-level schedules against PostgreSQL, a
// MinIO of its own and local notifier servers: a scheduled snapshot runs; MinIO stopped gives
// exactly one alert per notifier and failures_total > 0; MinIO back gives one recovery each;
// /metrics equals the textfile; status exits 3 once the RPO is exceeded.
func TestDaemon(t *testing.T) {
	e := newEnv(t, fixture.Gen242)
	e.s3 = testenv.NewMinIO(t)
	e.repoURL = e.s3.ResticRepo(e.s3.Bucket(t, "daemon", false), "repo")
	e.envFile = e.s3.EnvFile(t)
	e.instanceExtra = []string{`rpo = "1h"`}
	// MinIO is stopped below while a snapshot may be uploading: restic alone would retry for
	// 15 minutes; the outage bound ends such a run within seconds.
	e.repositoryExtra = []string{`outage_timeout = "5s"`}
	e.writeConfig()
	e.init()

	hook := notifytest.NewHTTP(t, `{}`)
	slack := notifytest.NewHTTP(t, `ok`)
	tg := notifytest.NewHTTP(t, `{"ok":true}`)
	mail := notifytest.NewSMTP(t, false)
	tokenFile := filepath.Join(e.dir, "tg.token")
	writeFile(t, tokenFile, "4242:TOKEN-SECRET\n", 0o600)
	smtpPass := filepath.Join(e.dir, "smtp.pass")
	writeFile(t, smtpPass, "smtp-secret-pw\n", 0o600)
	textDir := filepath.Join(e.dir, "textfile")
	os.MkdirAll(textDir, 0o755)
	addr := freePort(t)
	base, _ := os.ReadFile(e.cfgPath)
	daemonCfg := string(base) + fmt.Sprintf(`
[schedule]
snapshot = "@every 3s"

[daemon]
metrics_listen = %q
textfile_dir = %q
stop_timeout = "2m"

[notify]
interval = "1h"
retries = 2
retry_backoff = "200ms"
[notify.webhook]
url = %q
[notify.slack]
url = %q
[notify.telegram]
token_file = %q
chat_id = "-100"
api_url = %q
[notify.smtp]
host = "127.0.0.1"
port = %d
from = "backup@example.org"
to = ["ops@example.org"]
username = "relay"
password_file = %q
tls = "none"
`, addr, textDir, hook.URL+"/hook", slack.URL+"/slack", tokenFile, tg.URL, mail.Port(), smtpPass)
	writeFile(t, e.cfgPath, daemonCfg, 0o600)

	cmd := exec.Command(testBinary, "--config", e.cfgPath, "daemon")
	cmd.Env = cliEnv()
	logs := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\ndaemon log:\n%s", append(args, logs.String())...)
	}
	get := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	metricsURL := "http://" + addr + "/metrics"
	wait := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			select {
			case err := <-exited:
				fail("daemon exited (%v) while waiting for %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				fail("timed out waiting for %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	const succ = `dhis2_life_job_last_success_timestamp_seconds{instance="hmis",job="snapshot"}`
	const failures = `dhis2_life_job_failures_total{instance="hmis",job="snapshot"}`
	var firstSuccess float64
	wait("a scheduled snapshot", 3*time.Minute, func() bool {
		v, ok := metricValue(get(metricsURL), succ)
		firstSuccess = v
		return ok && v > 0
	})
	if n := len(hook.Requests()) + len(slack.Requests()) + len(tg.Requests()) + len(mail.Mails()); n != 0 {
		fail("%d notifications before any failure", n)
	}
	wait("the repository size", 30*time.Second, func() bool {
		v, ok := metricValue(get(metricsURL), `dhis2_life_repository_bytes{instance="hmis"}`)
		return ok && v > 0
	})

	// Outage: exactly one alert per notifier, even after several failed runs.
	e.s3.Stop()
	wait("two failed runs", 3*time.Minute, func() bool {
		v, _ := metricValue(get(metricsURL), failures)
		return v >= 2
	})
	wait("alerts", 30*time.Second, func() bool {
		return len(hook.Requests()) >= 1 && len(slack.Requests()) >= 1 && len(tg.Requests()) >= 1 && len(mail.Mails()) >= 1
	})
	if v, _ := metricValue(get(metricsURL), `dhis2_life_repository_up{instance="hmis"}`); v != 0 {
		fail("repository_up = %v during the outage", v)
	}
	counts := func() [4]int {
		return [4]int{len(hook.Requests()), len(slack.Requests()), len(tg.Requests()), len(mail.Mails())}
	}
	if c := counts(); c != [4]int{1, 1, 1, 1} {
		fail("alerts per notifier (webhook, slack, telegram, smtp) = %v, want one each", c)
	}
	var ev map[string]any
	json.Unmarshal([]byte(hook.Requests()[0].Body), &ev)
	if ev["event"] != "failure" || ev["instance"] != "hmis" || ev["job"] != "snapshot" || ev["message"] == "" {
		fail("webhook body %s", hook.Requests()[0].Body)
	}
	for _, r := range append(append(hook.Requests(), slack.Requests()...), tg.Requests()...) {
		if strings.Contains(r.Body, "TOKEN-SECRET") || strings.Contains(r.Body, "smtp-secret") || strings.Contains(r.Body, "battery staple") {
			fail("secret in a notification: %s", r.Body)
		}
	}
	if m := mail.Mails()[0]; m.Auth != "relay:smtp-secret-pw" || !strings.Contains(m.Data, "FAILURE") {
		fail("mail %+v", m)
	}

	// Recovery: one recovery message per notifier.
	e.s3.Start(t)
	wait("recovery on every notifier", 3*time.Minute, func() bool { return counts() == [4]int{2, 2, 2, 2} })
	json.Unmarshal([]byte(hook.Requests()[1].Body), &ev)
	if ev["event"] != "recovery" {
		fail("second webhook event %v", ev)
	}
	if v, _ := metricValue(get(metricsURL), succ); v < firstSuccess {
		fail("last success went backwards: %v < %v", v, firstSuccess)
	}
	wait("more successful runs", time.Minute, func() bool {
		v, _ := metricValue(get(metricsURL), succ)
		return v > firstSuccess
	})
	if c := counts(); c != [4]int{2, 2, 2, 2} {
		fail("notifications after recovery: %v", c)
	}

	// /metrics and the textfile agree (retry: a job may finish between the two reads).
	wait("/metrics == textfile", 30*time.Second, func() bool {
		m := get(metricsURL)
		f, _ := os.ReadFile(filepath.Join(textDir, "dhis2_life.prom"))
		return m != "" && m == string(f)
	})

	// SIGHUP with a broken config keeps the old one.
	writeFile(t, e.cfgPath, daemonCfg+"\n[schedule.broken\n", 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	wait("reload error", 10*time.Second, func() bool { return strings.Contains(logs.String(), "keeping the previous configuration") })
	writeFile(t, e.cfgPath, daemonCfg, 0o600)

	// status works while the daemon runs, and passes within the RPO.
	if r := e.run("status", "--json"); r.code != 0 {
		fail("status within rpo: %s", r)
	}

	// SIGTERM: graceful stop, exit 0.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			fail("daemon exit: %v", err)
		}
	case <-time.After(3 * time.Minute):
		fail("daemon did not stop on SIGTERM")
	}

	// RPO exceeded: status exits 3 and says why.
	writeFile(t, e.cfgPath, strings.Replace(daemonCfg, `rpo = "1h"`, `rpo = "1s"`, 1), 0o600)
	time.Sleep(1500 * time.Millisecond)
	r := e.run("status", "--json")
	if r.code != 3 {
		t.Fatalf("status with rpo exceeded: %s", r)
	}
	var st struct {
		Instances map[string]struct {
			LastSnapshot map[string]any `json:"last_snapshot"`
			Problems     []string       `json:"problems"`
			Failures7d   int            `json:"failures_7d"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	h := st.Instances["hmis"]
	if h.LastSnapshot == nil || len(h.Problems) == 0 || !strings.Contains(h.Problems[0], "rpo") || h.Failures7d < 2 {
		t.Fatalf("status: %s", r.stdout)
	}
	// munin fetch works on the same data.
	if r := e.run("munin"); r.code != 0 || !strings.Contains(r.stdout, "multigraph dhis2_life_snapshot_age") {
		t.Fatalf("munin: %s", r)
	}
}
