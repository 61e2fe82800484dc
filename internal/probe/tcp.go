package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// maxTCPRead bounds what a tcp probe reads.
const maxTCPRead = 64 << 10

func (r *runner) tcp(ctx context.Context, res *Result) {
	prog, err := r.opts.Programs.compile(config.ScopeTCP, r.p.Assert)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	start := time.Now()
	d := &net.Dialer{Resolver: r.opts.Resolver}
	conn, err := d.DialContext(ctx, "tcp", r.p.Address)
	res.Phases.Connect = time.Since(start)
	if err != nil {
		res.Status, res.Error = Down, reason(ctx, err, r.p.Address, r.timeout)
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if r.p.Send != "" {
		if _, err := io.WriteString(conn, r.p.Send); err != nil {
			res.Status, res.Error = Down, "send: "+reason(ctx, err, r.p.Address, r.timeout)
			return
		}
	}
	var got []byte
	if len(r.p.Expect) > 0 || (prog != nil && r.opts.Programs.assertUses(r.p.Assert, "body")) {
		got, err = readUntil(conn, r.p.Expect)
		if err != nil && !errors.Is(err, io.EOF) {
			res.Status, res.Error = Down, fmt.Sprintf("read from %s: %s (got %d bytes: %q)", r.p.Address, reason(ctx, err, r.p.Address, r.timeout), len(got), clip(got))
			return
		}
		if missing := missingExpect(string(got), r.p.Expect); missing != "" {
			res.Status, res.Error = Down, fmt.Sprintf("response from %s does not contain %q (got %q)", r.p.Address, missing, clip(got))
			return
		}
	}
	res.Phases.Total = time.Since(start)
	res.Status = Up
	if prog != nil {
		env := config.TCPEnv{Duration: time.Since(start), Body: string(got)}
		if msg := evaluate(prog, env, r.p.Assert); msg != "" {
			res.Status, res.Error = Down, msg
		}
	}
}

// readUntil reads until every expected string was seen, the peer closes,
// or maxTCPRead bytes. With no expectations it reads until close or limit.
func readUntil(conn net.Conn, expect []string) ([]byte, error) {
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < maxTCPRead {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if len(expect) > 0 && missingExpect(string(got), expect) == "" {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func missingExpect(got string, expect []string) string {
	for _, e := range expect {
		if !strings.Contains(got, e) {
			return e
		}
	}
	return ""
}

// clip shortens data for messages.
func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
