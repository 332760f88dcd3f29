package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dhis2-life/dhis2-life/internal/config"
)

// Event kinds (the webhook body's "event").
const (
	EventFailure  = "failure"
	EventRecovery = "recovery"
	EventStale    = "stale"
	EventTest     = "test"
)

// Event is one notification. Its JSON form is the generic webhook's body (contract:
// "event", "instance", "job", "message").
type Event struct {
	Event    string    `json:"event"`
	Instance string    `json:"instance"`
	Job      string    `json:"job"`
	Message  string    `json:"message"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host,omitempty"`
}

// Subject is a one-line summary, e.g. "[dhis2-life] FAILURE: snapshot of hmis".
func (e Event) Subject() string {
	what := e.Job
	if e.Instance != "" {
		what += " of " + e.Instance
	}
	if e.Job == "" {
		what = e.Instance
	}
	s := "[dhis2-life] " + strings.ToUpper(e.Event)
	if strings.TrimSpace(what) != "" {
		s += ": " + strings.TrimSpace(what)
	}
	if e.Host != "" {
		s += " on " + e.Host
	}
	return s
}

// Text is the subject and the message.
func (e Event) Text() string { return e.Subject() + "\n" + e.Message }

// Notifier delivers events to one channel.
type Notifier interface {
	// Name names the channel for logs ("webhook", "slack", "telegram", "smtp").
	Name() string
	// Send delivers one event (one attempt).
	Send(ctx context.Context, e Event) error
}

// FromConfig builds the configured notifiers, reading their secret files. It also returns the
// secrets read, which must never appear in messages or logs.
func FromConfig(n config.Notify) ([]Notifier, []string, error) {
	var out []Notifier
	var secrets []string
	readSecret := func(what, path string) (string, error) {
		if err := config.CheckSecretFile(path); err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s: %s is empty", what, path)
		}
		secrets = append(secrets, s)
		return s, nil
	}
	webURL := func(what string, w *config.Webhook) (string, error) {
		if w.URLFile != "" {
			return readSecret(what+" url_file", w.URLFile)
		}
		return w.URL, nil
	}
	if w := n.Webhook; w != nil {
		u, err := webURL("notify.webhook", w)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, &Webhook{URL: u})
	}
	if w := n.Slack; w != nil {
		u, err := webURL("notify.slack", w)
		if err != nil {
			return nil, nil, err
		}
		secrets = append(secrets, u) // a Slack webhook URL is a credential
		out = append(out, &Slack{URL: u})
	}
	if t := n.Telegram; t != nil {
		tok, err := readSecret("notify.telegram token_file", t.TokenFile)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, &Telegram{APIURL: t.APIURL, Token: tok, ChatID: t.ChatID})
	}
	if s := n.SMTP; s != nil {
		m := &SMTP{Host: s.Host, Port: s.Port, From: s.From, To: s.To, Username: s.Username, TLS: s.TLS}
		if s.PasswordFile != "" {
			p, err := readSecret("notify.smtp password_file", s.PasswordFile)
			if err != nil {
				return nil, nil, err
			}
			m.Password = p
		}
		out = append(out, m)
	}
	return out, secrets, nil
}

var httpClient = &http.Client{Timeout: time.Minute}

func postJSON(ctx context.Context, url string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, errors.New("invalid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dhis2-life")
	resp, err := httpClient.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token: keep only the cause.
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			return nil, ue.Unwrap()
		}
		return nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return rb, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(firstLine(string(rb))))
	}
	return rb, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Webhook POSTs the event as JSON.
type Webhook struct{ URL string }

// Name implements Notifier.
func (w *Webhook) Name() string { return "webhook" }

// Send implements Notifier.
func (w *Webhook) Send(ctx context.Context, e Event) error {
	_, err := postJSON(ctx, w.URL, e)
	return err
}

// Slack posts to a Slack incoming webhook.
type Slack struct{ URL string }

// Name implements Notifier.
func (s *Slack) Name() string { return "slack" }

// Send implements Notifier.
func (s *Slack) Send(ctx context.Context, e Event) error {
	icon := map[string]string{EventFailure: ":red_circle:", EventRecovery: ":large_green_circle:", EventStale: ":warning:", EventTest: ":information_source:"}[e.Event]
	text := strings.TrimSpace(icon+" *"+e.Subject()+"*") + "\n" + e.Message
	_, err := postJSON(ctx, s.URL, map[string]string{"text": text})
	return err
}

// Telegram sends through a Telegram bot (sendMessage).
type Telegram struct {
	APIURL string // default https://api.telegram.org
	Token  string
	ChatID string
}

// Name implements Notifier.
func (t *Telegram) Name() string { return "telegram" }

// Send implements Notifier.
func (t *Telegram) Send(ctx context.Context, e Event) error {
	api := strings.TrimRight(t.APIURL, "/")
	if api == "" {
		api = "https://api.telegram.org"
	}
	rb, err := postJSON(ctx, api+"/bot"+t.Token+"/sendMessage", map[string]any{
		"chat_id": t.ChatID, "text": e.Text(), "disable_web_page_preview": true,
	})
	if err != nil {
		var r struct {
			Description string `json:"description"`
		}
		if json.Unmarshal(rb, &r) == nil && r.Description != "" {
			return fmt.Errorf("telegram: %s", r.Description)
		}
		return err
	}
	var r struct {
		OK          bool   `json:"ok"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(rb, &r); err != nil || !r.OK {
		return fmt.Errorf("telegram did not accept the message: %s", r.Description)
	}
	return nil
}

// SMTP sends mail through a relay (send-only).
type SMTP struct {
	Host     string
	Port     int
	From     string
	To       []string
	Username string
	Password string
	TLS      string // none | starttls | tls
	// TLSConfig overrides the TLS client configuration (tests use it to trust their CA).
	TLSConfig *tls.Config
}

// Name implements Notifier.
func (s *SMTP) Name() string { return "smtp" }

func (s *SMTP) tlsConfig() *tls.Config {
	if s.TLSConfig != nil {
		c := s.TLSConfig.Clone()
		if c.ServerName == "" {
			c.ServerName = s.Host
		}
		return c
	}
	return &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
}

// Send implements Notifier.
func (s *SMTP) Send(ctx context.Context, e Event) error {
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	d := net.Dialer{}
	var conn net.Conn
	var err error
	if s.TLS == "tls" {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: s.tlsConfig()}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	defer c.Close()
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	if err := c.Hello(host); err != nil {
		return fmt.Errorf("smtp EHLO: %w", err)
	}
	if s.TLS == "starttls" || s.TLS == "" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp %s does not offer STARTTLS (set notify.smtp.tls = \"tls\" or \"none\")", addr)
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return fmt.Errorf("smtp STARTTLS: %w", err)
		}
	}
	if s.Username != "" {
		if err := c.Auth(&plainAuth{user: s.Username, pass: s.Password}); err != nil {
			return fmt.Errorf("smtp login as %s: %w", s.Username, err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	for _, to := range s.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(s.message(e)); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	return c.Quit()
}

func (s *SMTP) message(e Event) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) {
		fmt.Fprintf(&b, "%s: %s\r\n", k, strings.NewReplacer("\r", " ", "\n", " ").Replace(v))
	}
	hdr("From", s.From)
	hdr("To", strings.Join(s.To, ", "))
	hdr("Subject", e.Subject())
	hdr("Date", e.Time.Format(time.RFC1123Z))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := e.Message
	if e.Instance != "" {
		body += "\n\ninstance: " + e.Instance
	}
	if e.Job != "" {
		body += "\njob: " + e.Job
	}
	body += "\ntime: " + e.Time.Format(time.RFC3339) + "\n"
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}

// plainAuth is AUTH PLAIN. Unlike smtp.PlainAuth it also works without TLS when the operator
// chose tls = "none" (e.g. a relay on localhost); with "starttls"/"tls" the session is encrypted
// before it is used.
type plainAuth struct{ user, pass string }

func (a *plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}
