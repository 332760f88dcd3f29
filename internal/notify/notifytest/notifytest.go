// Package notifytest provides local servers that record what notifiers send (HTTP webhooks
// and a minimal SMTP server with optional STARTTLS and AUTH PLAIN), for tests only.
package notifytest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// HTTP records the bodies POSTed to it.
type HTTP struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []Request
	// Fail makes the server answer 500 while true.
	fail bool
}

// Request is one recorded request.
type Request struct {
	Path string
	Body string
}

// NewHTTP starts a recording HTTP server, closed when the test ends. reply is the body
// answered with 200 (e.g. `{"ok":true}` for Telegram).
func NewHTTP(t testing.TB, reply string) *HTTP {
	h := &HTTP{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		fail := h.fail
		if !fail {
			h.bodies = append(h.bodies, Request{Path: r.URL.Path, Body: string(b)})
		}
		h.mu.Unlock()
		if fail {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, reply)
	}))
	t.Cleanup(h.Server.Close)
	return h
}

// SetFail makes the server fail (500) or succeed.
func (h *HTTP) SetFail(f bool) { h.mu.Lock(); h.fail = f; h.mu.Unlock() }

// Requests returns what was received so far.
func (h *HTTP) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.bodies...)
}

// Mail is one received message.
type Mail struct {
	From string
	To   []string
	Data string
	Auth string // "user:pass" when AUTH PLAIN was used
	TLS  bool
}

// SMTP is a minimal SMTP server recording messages.
type SMTP struct {
	Addr string
	// ClientTLS trusts the server's certificate (for notify.SMTP.TLSConfig).
	ClientTLS *tls.Config
	ln        net.Listener
	tlsConf   *tls.Config
	mu        sync.Mutex
	mails     []Mail
}

// NewSMTP starts an SMTP server on loopback offering STARTTLS (self-signed) and AUTH PLAIN;
// implicitTLS makes it speak TLS from the first byte (port 465 style).
func NewSMTP(t testing.TB, implicitTLS bool) *SMTP {
	cert, pool := selfSigned(t)
	s := &SMTP{tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}}, ClientTLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	var ln net.Listener
	var err error
	if implicitTLS {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", s.tlsConf)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	go s.serve(implicitTLS)
	t.Cleanup(func() { ln.Close() })
	return s
}

// Port returns the listening port.
func (s *SMTP) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Mails returns the messages received so far.
func (s *SMTP) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

func (s *SMTP) serve(implicitTLS bool) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(c, implicitTLS)
	}
}

func (s *SMTP) session(c net.Conn, isTLS bool) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(l string) { w.WriteString(l + "\r\n"); w.Flush() }
	say("220 notifytest ESMTP")
	var m Mail
	m.TLS = isTLS
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			if isTLS {
				say("250-notifytest\r\n250 AUTH PLAIN")
			} else {
				say("250-notifytest\r\n250-STARTTLS\r\n250 AUTH PLAIN")
			}
		case cmd == "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.tlsConf)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS, m.TLS = tc, true, true
			r, w = bufio.NewReader(c), bufio.NewWriter(c)
		case strings.HasPrefix(cmd, "AUTH PLAIN"):
			arg := strings.TrimSpace(line[len("AUTH PLAIN"):])
			b, _ := base64.StdEncoding.DecodeString(arg)
			parts := strings.Split(string(b), "\x00")
			if len(parts) == 3 {
				m.Auth = parts[1] + ":" + parts[2]
			}
			say("235 ok")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m.From = strings.Trim(line[len("MAIL FROM:"):], "<> ")
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.To = append(m.To, strings.Trim(line[len("RCPT TO:"):], "<> "))
			say("250 ok")
		case cmd == "DATA":
			say("354 end with .")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Data = data.String()
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			m = Mail{TLS: isTLS}
			say("250 queued")
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "notifytest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
