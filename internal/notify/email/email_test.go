package email_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/email"
	"github.com/stewardhq/steward/internal/notify/notifytest"
)

const (
	user     = "steward"
	password = "hunter2"
)

// mailServer is a real SMTP server (github.com/emersion/go-smtp) on
// loopback that records what it accepts.
type mailServer struct {
	addr     string
	behavior notifytest.Behavior
	needAuth bool

	mu    sync.Mutex
	msgs  []delivered
	auths []string
}

type delivered struct {
	from string
	to   []string
	data []byte
	tls  bool
}

type session struct {
	srv  *mailServer
	conn *smtp.Conn
	auth bool
	cur  delivered
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, pw string) error {
		s.srv.mu.Lock()
		s.srv.auths = append(s.srv.auths, username)
		s.srv.mu.Unlock()
		if username != user || pw != password {
			return errors.New("invalid credentials")
		}
		s.auth = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.needAuth && !s.auth {
		return smtp.ErrAuthRequired
	}
	s.cur = delivered{from: from}
	_, s.cur.tls = s.conn.TLSConnectionState()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.srv.behavior == notifytest.Reject {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "message rejected"}
	}
	s.cur.data = b
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = delivered{} }
func (s *session) Logout() error { return nil }

// startServer starts an SMTP server: mode none (plain), starttls (offers
// STARTTLS with cert) or tls (implicit TLS with cert).
func startServer(t *testing.T, mode string, b notifytest.Behavior, cert tls.Certificate, needAuth bool) *mailServer {
	t.Helper()
	ms := &mailServer{behavior: b, needAuth: needAuth}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.addr = l.Addr().String()
	if b == notifytest.Hang {
		// Accept connections and never greet.
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			l.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		return ms
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: ms, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	switch mode {
	case email.TLSNone:
		srv.AllowInsecureAuth = true // loopback only
	case email.TLSStartTLS:
		srv.TLSConfig = tlsCfg
	case email.TLSImplicit:
		l = tls.NewListener(l, tlsCfg)
	}
	go srv.Serve(l) //nolint:errcheck // returns when closed
	t.Cleanup(func() { srv.Close() })
	return ms
}

func (ms *mailServer) messages() []delivered {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]delivered(nil), ms.msgs...)
}

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "steward test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func newChannel(t *testing.T, name, addr, mode string, roots *x509.CertPool, username string) notify.Channel {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cfg := config.Channel{Name: name, Type: email.Type, From: "Steward <steward@example.com>",
		To:   []string{"oncall@example.com", "Ops <ops@example.com>"},
		SMTP: config.SMTP{Host: host, Port: p, TLS: mode, Username: username, Password: password}}
	ch, err := email.New(cfg, notify.Deps{TLSConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func decode(t *testing.T, d delivered) (notifytest.Received, *mail.Message) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(d.data))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%s", err, d.data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject: %v", err)
	}
	id, _ := strconv.ParseInt(msg.Header.Get("X-Steward-Delivery"), 10, 64)
	key, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("X-Steward-Dedup-Key"))
	return notifytest.Received{Title: subject, Event: msg.Header.Get("X-Steward-Event"), DedupKey: key,
		Resolve: strings.HasPrefix(subject, "[Steward] Resolved: "), DeliveryID: id}, msg
}

func TestConformance(t *testing.T) {
	t.Parallel()
	cert, roots := selfSigned(t)
	for _, mode := range []string{email.TLSNone, email.TLSStartTLS, email.TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			notifytest.Run(t, email.Type, notifytest.Harness{
				Start: func(t *testing.T, name string, b notifytest.Behavior) (notify.Channel, func() []notifytest.Received) {
					ms := startServer(t, mode, b, cert, true)
					ch := newChannel(t, name, ms.addr, mode, roots, user)
					return ch, func() []notifytest.Received {
						var out []notifytest.Received
						for _, d := range ms.messages() {
							if d.tls != (mode != email.TLSNone) {
								t.Errorf("message sent with TLS = %v in mode %s", d.tls, mode)
							}
							r, _ := decode(t, d)
							out = append(out, r)
						}
						return out
					}
				},
			})
		})
	}
}

func TestHeadersAndBody(t *testing.T) {
	t.Parallel()
	cert, roots := selfSigned(t)
	ms := startServer(t, email.TLSStartTLS, notifytest.Accept, cert, true)
	ch := newChannel(t, "mail", ms.addr, email.TLSStartTLS, roots, user)
	m := notify.Message{Event: notify.EventReviewOverdue, Severity: notify.SeverityWarning, Service: "shop",
		Title: "Review #3 overdue — größer\r\nBcc: evil@example.com", Text: "Two sign-offs are missing.",
		Fields: map[string]string{"deadline": "2025-01-02 10:00"}, Link: "http://127.0.0.1:8080/reviews/3", DedupKey: "review:3:overdue"}
	if err := ch.Send(t.Context(), m, 77); err != nil {
		t.Fatal(err)
	}
	got := ms.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	d := got[0]
	if d.from != "steward@example.com" || strings.Join(d.to, ",") != "oncall@example.com,ops@example.com" {
		t.Errorf("envelope from %q to %v", d.from, d.to)
	}
	r, msg := decode(t, d)
	if !strings.HasPrefix(r.Title, "[Steward] Review #3 overdue — größer") || strings.ContainsAny(r.Title, "\r\n") {
		t.Errorf("subject = %q", r.Title)
	}
	if msg.Header.Get("Bcc") != "" {
		t.Error("header injection through the title")
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if !strings.HasPrefix(msg.Header.Get("Message-ID"), "<steward.77.") || !strings.HasSuffix(msg.Header.Get("Message-ID"), "@example.com>") {
		t.Errorf("Message-ID = %q", msg.Header.Get("Message-ID"))
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if to, err := msg.Header.AddressList("To"); err != nil || len(to) != 2 {
		t.Errorf("To = %v, %v", to, err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Two sign-offs are missing.", "deadline: 2025-01-02 10:00", "Service:  shop", "http://127.0.0.1:8080/reviews/3"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

func TestStartTLSRequired(t *testing.T) {
	t.Parallel()
	cert, roots := selfSigned(t)
	// A server without TLS does not offer STARTTLS: refuse to send in clear.
	ms := startServer(t, email.TLSNone, notifytest.Accept, cert, false)
	ch := newChannel(t, "mail", ms.addr, email.TLSStartTLS, roots, "")
	err := ch.Send(t.Context(), notify.Message{Event: "e", Severity: "info", Title: "t"}, 1)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || !strings.Contains(err.Error(), "mail") {
		t.Fatalf("err = %v, want a STARTTLS refusal naming the channel", err)
	}
	if n := len(ms.messages()); n != 0 {
		t.Fatalf("%d messages sent in clear text", n)
	}
	// An untrusted certificate is refused too.
	ms = startServer(t, email.TLSStartTLS, notifytest.Accept, cert, false)
	ch = newChannel(t, "mail", ms.addr, email.TLSStartTLS, x509.NewCertPool(), "")
	if err := ch.Send(t.Context(), notify.Message{Event: "e", Severity: "info", Title: "t"}, 1); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: err = %v", err)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	cert, roots := selfSigned(t)
	ms := startServer(t, email.TLSImplicit, notifytest.Accept, cert, true)
	// Without a username the server's auth requirement fails the send.
	ch := newChannel(t, "mail", ms.addr, email.TLSImplicit, roots, "")
	if err := ch.Send(t.Context(), notify.Message{Event: "e", Severity: "info", Title: "t"}, 1); err == nil {
		t.Fatal("send without AUTH to a server that requires it succeeded")
	}
	host, port, _ := net.SplitHostPort(ms.addr)
	p, _ := strconv.Atoi(port)
	bad, err := email.New(config.Channel{Name: "mail", From: "s@example.com", To: []string{"o@example.com"},
		SMTP: config.SMTP{Host: host, Port: p, TLS: email.TLSImplicit, Username: user, Password: "wrong"}},
		notify.Deps{TLSConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Send(t.Context(), notify.Message{Event: "e", Severity: "info", Title: "t"}, 1); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("wrong password: err = %v", err)
	}
	ms.mu.Lock()
	auths := strings.Join(ms.auths, ",")
	ms.mu.Unlock()
	if auths != user {
		t.Fatalf("AUTH attempts = %q, want one by %s", auths, user)
	}
}

func TestPasswordSecretRef(t *testing.T) {
	t.Parallel()
	_, err := email.New(config.Channel{Name: "mail", From: "s@example.com", To: []string{"o@example.com"},
		SMTP: config.SMTP{Host: "127.0.0.1", Port: 25, Username: "u", Password: "env:STEWARD_TEST_UNSET_SMTP_PW"}}, notify.Deps{})
	if err == nil || !strings.Contains(err.Error(), "smtp.password") {
		t.Fatalf("err = %v", err)
	}
}
