package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
)

// Type is the channel type in config.
const Type = "email"

// TLS modes of config.SMTP.TLS.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// Email sends messages over SMTP.
type Email struct {
	name     string
	host     string
	port     int
	mode     string
	username string
	password string
	from     string
	to       []string
	tls      *tls.Config
	now      func() time.Time
}

var _ notify.Channel = (*Email)(nil)

// New builds an email channel from its config, resolving the SMTP password.
// deps.TLSConfig, when set, is the base TLS configuration (e.g. the RootCAs
// of a private relay).
func New(cfg config.Channel, deps notify.Deps) (notify.Channel, error) {
	if cfg.SMTP.Host == "" {
		return nil, errors.New("smtp.host is empty")
	}
	if cfg.From == "" || len(cfg.To) == 0 {
		return nil, errors.New("from and at least one to address are required")
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("from %q: %w", cfg.From, err)
	}
	for _, to := range cfg.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return nil, fmt.Errorf("to %q: %w", to, err)
		}
	}
	mode := cfg.SMTP.TLS
	if mode == "" {
		mode = TLSStartTLS
	}
	switch mode {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("smtp.tls %q: want starttls, tls or none", mode)
	}
	port := cfg.SMTP.Port
	if port == 0 {
		port = 587
		if mode == TLSImplicit {
			port = 465
		}
	}
	password, err := notify.ResolveSecret(cfg.SMTP.Password, "smtp.password")
	if err != nil {
		return nil, err
	}
	var base *tls.Config
	if deps.TLSConfig != nil {
		base = deps.TLSConfig.Clone()
	} else {
		base = &tls.Config{}
	}
	base.ServerName = cfg.SMTP.Host
	if base.MinVersion == 0 {
		base.MinVersion = tls.VersionTLS12
	}
	return &Email{name: cfg.Name, host: cfg.SMTP.Host, port: port, mode: mode, username: cfg.SMTP.Username,
		password: password, from: cfg.From, to: cfg.To, tls: base, now: time.Now}, nil
}

// Name is the channel name.
func (e *Email) Name() string { return e.name }

// Type is "email".
func (e *Email) Type() string { return Type }

// Send delivers m to every recipient in one SMTP transaction.
func (e *Email) Send(ctx context.Context, m notify.Message, deliveryID int64) error {
	if err := e.send(ctx, m, deliveryID); err != nil {
		return fmt.Errorf("email %s: smtp %s: %w", e.name, net.JoinHostPort(e.host, strconv.Itoa(e.port)), err)
	}
	return nil
}

func (e *Email) send(ctx context.Context, m notify.Message, deliveryID int64) error {
	addr := net.JoinHostPort(e.host, strconv.Itoa(e.port))
	var conn net.Conn
	var err error
	d := &net.Dialer{}
	if e.mode == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: d, Config: e.tls}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	// net/smtp has no context: end the conversation when ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		conn.Close()
		return e.ctxErr(ctx, err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return e.ctxErr(ctx, err)
	}
	if e.mode == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("server does not offer STARTTLS and smtp.tls is starttls; refusing to send in clear text")
		}
		if err := c.StartTLS(e.tls); err != nil {
			return fmt.Errorf("starttls: %w", e.ctxErr(ctx, err))
		}
	}
	if e.username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("server does not offer AUTH but smtp.username is set")
		}
		if err := c.Auth(smtp.PlainAuth("", e.username, e.password, e.host)); err != nil {
			return fmt.Errorf("auth: %w", e.ctxErr(ctx, err))
		}
	}
	from, _ := mail.ParseAddress(e.from)
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("mail from: %w", e.ctxErr(ctx, err))
	}
	for _, to := range e.to {
		a, _ := mail.ParseAddress(to)
		if err := c.Rcpt(a.Address); err != nil {
			return fmt.Errorf("rcpt to %s: %w", a.Address, e.ctxErr(ctx, err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", e.ctxErr(ctx, err))
	}
	if _, err := w.Write(e.Render(m, deliveryID)); err != nil {
		return fmt.Errorf("data: %w", e.ctxErr(ctx, err))
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", e.ctxErr(ctx, err))
	}
	return c.Quit()
}

// ctxErr prefers the context's error to the I/O error it caused.
func (e *Email) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// Render returns the RFC 5322 message: headers and a quoted-printable UTF-8
// plain-text body.
func (e *Email) Render(m notify.Message, deliveryID int64) []byte {
	subject := m.Summary()
	if m.Resolve {
		subject = "Resolved: " + subject
	}
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", e.from)
	hdr("To", strings.Join(e.to, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", oneLine("[Steward] "+subject)))
	hdr("Date", e.now().Format(time.RFC1123Z))
	hdr("Message-ID", e.messageID(m, deliveryID))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("X-Steward-Event", oneLine(m.Event))
	hdr("X-Steward-Delivery", strconv.FormatInt(deliveryID, 10))
	if m.DedupKey != "" {
		hdr("X-Steward-Dedup-Key", mime.QEncoding.Encode("utf-8", oneLine(m.DedupKey)))
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(body(m, subject)))
	qp.Close()
	return b.Bytes()
}

func body(m notify.Message, subject string) string {
	var b strings.Builder
	b.WriteString(subject + "\n\n")
	if m.Text != "" {
		b.WriteString(m.Text + "\n\n")
	}
	state := m.Severity
	if m.Resolve {
		state = "resolved"
	}
	fmt.Fprintf(&b, "Severity: %s\nEvent:    %s\n", state, m.Event)
	if m.Service != "" {
		fmt.Fprintf(&b, "Service:  %s\n", m.Service)
	}
	if len(m.Fields) > 0 {
		keys := make([]string, 0, len(m.Fields))
		for k := range m.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", k, m.Fields[k])
		}
	}
	if m.Link != "" {
		fmt.Fprintf(&b, "\n%s\n", m.Link)
	}
	b.WriteString("\n-- \nSent by Steward.\n")
	return strings.ReplaceAll(b.String(), "\n", "\r\n")
}

// messageID is stable for a delivery, so a retry after a lost reply can be
// recognized by the receiving side.
func (e *Email) messageID(m notify.Message, deliveryID int64) string {
	h := sha256.Sum256([]byte(e.name + "\x00" + m.DedupKey + "\x00" + strconv.FormatInt(deliveryID, 10)))
	domain := "steward.invalid"
	if a, err := mail.ParseAddress(e.from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
			domain = a.Address[i+1:]
		}
	}
	return "<steward." + strconv.FormatInt(deliveryID, 10) + "." + hex.EncodeToString(h[:8]) + "@" + domain + ">"
}

// oneLine keeps header values on one line (no header injection).
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}
