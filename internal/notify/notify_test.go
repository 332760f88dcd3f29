package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
	"github.com/dhis2-life/dhis2-life/internal/notify/notifytest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func writeSecret(t *testing.T, dir, name, v string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAllChannels sends failure, a suppressed repeat, and a recovery to all four channels.
func TestAllChannels(t *testing.T) {
	dir := t.TempDir()
	hook := notifytest.NewHTTP(t, `{}`)
	slack := notifytest.NewHTTP(t, `ok`)
	tg := notifytest.NewHTTP(t, `{"ok":true,"result":{}}`)
	mail := notifytest.NewSMTP(t, false)
	const token = "123456:SECRET-TOKEN"
	cfg := config.Notify{
		Webhook:  &config.Webhook{URL: hook.URL + "/hook"},
		Slack:    &config.Webhook{URLFile: writeSecret(t, dir, "slack.url", slack.URL+"/services/T0/B0/XYZSECRET")},
		Telegram: &config.Telegram{TokenFile: writeSecret(t, dir, "tg.token", token), ChatID: "-100", APIURL: tg.URL},
		SMTP: &config.SMTP{Host: "127.0.0.1", Port: mail.Port(), From: "backup@example.org", To: []string{"ops@example.org"},
			Username: "relay", PasswordFile: writeSecret(t, dir, "smtp.pass", "mail-pass-123"), TLS: "starttls"},
	}
	ns, secrets, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if s, ok := n.(*SMTP); ok {
			s.TLSConfig = mail.ClientTLS
		}
	}
	now := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	logs := &syncBuf{}
	d := New(Options{Notifiers: ns, Log: slog.New(slog.NewTextHandler(logs, nil)), Interval: time.Hour, Retries: 1,
		Backoff: 10 * time.Millisecond, Secrets: secrets, Now: clock, Host: "backup1", StatePath: filepath.Join(dir, "notify.json")})

	// The job's error happens to contain secrets: they must not be sent.
	if !d.Failure("hmis", "snapshot", "restic failed talking to "+slack.URL+"/services/T0/B0/XYZSECRET with token "+token+" and s3://key:pw@host") {
		t.Fatal("first failure not alerted")
	}
	if d.Failure("hmis", "snapshot", "still broken") {
		t.Fatal("repeat within interval alerted")
	}
	if !d.Failure("hmis", "verify", "other job") {
		t.Fatal("another job's failure suppressed")
	}
	if !d.Success("hmis", "snapshot") {
		t.Fatal("no recovery")
	}
	if d.Success("hmis", "snapshot") {
		t.Fatal("second recovery")
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*notifytest.HTTP{"webhook": hook, "slack": slack, "telegram": tg} {
		reqs := h.Requests()
		if len(reqs) != 3 {
			t.Fatalf("%s got %d requests: %v", name, len(reqs), reqs)
		}
		for _, r := range reqs {
			for _, s := range []string{"XYZSECRET", "SECRET-TOKEN", "mail-pass", ":pw@"} {
				if strings.Contains(r.Body, s) {
					t.Errorf("%s body leaks %q: %s", name, s, r.Body)
				}
			}
		}
	}
	var ev Event
	if err := json.Unmarshal([]byte(hook.Requests()[0].Body), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Event != "failure" || ev.Instance != "hmis" || ev.Job != "snapshot" || !strings.Contains(ev.Message, "[redacted]") {
		t.Fatalf("webhook event %+v", ev)
	}
	if err := json.Unmarshal([]byte(hook.Requests()[2].Body), &ev); err != nil || ev.Event != "recovery" {
		t.Fatalf("third webhook event %+v %v", ev, err)
	}
	if p := tg.Requests()[0].Path; p != "/bot"+token+"/sendMessage" {
		t.Fatalf("telegram path %q", p)
	}
	if !strings.Contains(slack.Requests()[0].Body, `"text"`) {
		t.Fatalf("slack body %s", slack.Requests()[0].Body)
	}
	mails := mail.Mails()
	if len(mails) != 3 {
		t.Fatalf("got %d mails", len(mails))
	}
	m := mails[0]
	if !m.TLS || m.Auth != "relay:mail-pass-123" || m.From != "backup@example.org" || m.To[0] != "ops@example.org" ||
		!strings.Contains(m.Data, "Subject: [dhis2-life] FAILURE: snapshot of hmis on backup1") || strings.Contains(m.Data, "SECRET") {
		t.Fatalf("mail %+v", m)
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Fatalf("logs leak a secret: %s", logs.String())
	}
	// The open verify problem was persisted.
	d2 := New(Options{Interval: time.Hour, StatePath: filepath.Join(dir, "notify.json"), Now: clock, Log: slog.New(slog.NewTextHandler(logs, nil))})
	defer d2.Close(context.Background())
	if ps := d2.OpenProblems(); len(ps) != 1 || ps[0].Job != "verify" {
		t.Fatalf("persisted problems %+v", ps)
	}
	if d2.Failure("hmis", "verify", "again") {
		t.Fatal("restart re-alerted within the interval")
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if !d2.Failure("hmis", "verify", "again") {
		t.Fatal("not re-alerted after the interval")
	}
}

func TestImplicitTLS(t *testing.T) {
	mail := notifytest.NewSMTP(t, true)
	s := &SMTP{Host: "127.0.0.1", Port: mail.Port(), From: "a@b", To: []string{"c@d"}, TLS: "tls", TLSConfig: mail.ClientTLS}
	if err := s.Send(context.Background(), Event{Event: EventTest, Message: "hi", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if ms := mail.Mails(); len(ms) != 1 || !ms[0].TLS || !strings.Contains(ms[0].Data, "hi") {
		t.Fatalf("mails %+v", ms)
	}
	// STARTTLS required but the implicit-TLS server is spoken to in plain text: clear error, no hang.
	s.TLS = "starttls"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Send(ctx, Event{Event: EventTest}); err == nil {
		t.Fatal("plain client on a TLS port succeeded")
	}
}

// TestUnreachableNeverBlocks: a dead notifier is retried with backoff and logged, while
// Failure returns at once and other notifiers still deliver.
func TestUnreachableNeverBlocks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/hook"
	ln.Close()
	good := notifytest.NewHTTP(t, `{}`)
	flaky := notifytest.NewHTTP(t, `{}`)
	flaky.SetFail(true)
	logs := &syncBuf{}
	d := New(Options{Notifiers: []Notifier{&Webhook{URL: dead}, &Slack{URL: good.URL}, &Webhook{URL: flaky.URL}},
		Log: slog.New(slog.NewTextHandler(logs, nil)), Interval: time.Hour, Retries: 3, Backoff: 50 * time.Millisecond})
	t0 := time.Now()
	d.Failure("hmis", "snapshot", "boom")
	if time.Since(t0) > 50*time.Millisecond {
		t.Fatalf("Failure blocked for %s", time.Since(t0))
	}
	waitFor(t, "good delivery", func() bool { return len(good.Requests()) == 1 })
	time.Sleep(80 * time.Millisecond)
	flaky.SetFail(false) // recovers before the retries run out
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(flaky.Requests()); n != 1 {
		t.Fatalf("flaky got %d after retries", n)
	}
	l := logs.String()
	if !strings.Contains(l, "notification failed; retrying") || !strings.Contains(l, "giving up") || !strings.Contains(l, "attempts=4") {
		t.Fatalf("logs: %s", l)
	}
}

func TestSendNowReportsErrors(t *testing.T) {
	tg := notifytest.NewHTTP(t, `{"ok":false,"description":"chat not found"}`)
	d := New(Options{Notifiers: []Notifier{&Telegram{APIURL: tg.URL, Token: "tok-SECRET", ChatID: "1"}}, Secrets: []string{"tok-SECRET"},
		Backoff: time.Millisecond, Log: slog.New(slog.NewTextHandler(&syncBuf{}, nil))})
	defer d.Close(context.Background())
	errs := d.SendNow(context.Background(), Event{Event: EventTest, Message: "test"})
	if err := errs["telegram"]; err == nil || !strings.Contains(err.Error(), "chat not found") {
		t.Fatalf("errs %v", errs)
	}
}
