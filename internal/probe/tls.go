package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

var tlsVersions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func tlsVersionName(v uint16) string {
	for name, n := range tlsVersions {
		if n == v {
			return name
		}
	}
	return fmt.Sprintf("0x%04x", v)
}

func (r *runner) tls(ctx context.Context, res *Result) {
	prog, err := r.opts.Programs.compile(config.ScopeTLS, r.p.Assert)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	host, _, err := net.SplitHostPort(r.p.Address)
	if err != nil {
		res.Status, res.Error = Error, fmt.Sprintf("invalid address %q: want host:port", r.p.Address)
		return
	}
	serverName := r.p.ServerName
	if serverName == "" {
		serverName = host
	}
	var roots *x509.CertPool
	if r.p.CAFile != "" {
		if roots, err = loadCAs(r.p.CAFile); err != nil {
			res.Status, res.Error = Error, err.Error()
			return
		}
	}
	// Verification is done below, after the handshake, so that an expired
	// or untrusted certificate still reports its expiry.
	conf := &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MinVersion: tls.VersionTLS10} //nolint:gosec // verified explicitly
	start := time.Now()
	d := &tls.Dialer{NetDialer: &net.Dialer{Resolver: r.opts.Resolver}, Config: conf}
	conn, err := d.DialContext(ctx, "tcp", r.p.Address)
	res.Phases.TLS = time.Since(start)
	res.Phases.Total = res.Phases.TLS
	if err != nil {
		res.Status, res.Error = Down, reason(ctx, err, r.p.Address, r.timeout)
		return
	}
	state := conn.(*tls.Conn).ConnectionState()
	_ = conn.Close()
	if len(state.PeerCertificates) == 0 {
		res.Status, res.Error = Down, fmt.Sprintf("TLS error: %s sent no certificate", r.p.Address)
		return
	}
	leaf := state.PeerCertificates[0]
	now := time.Now()
	left := leaf.NotAfter.Sub(now)
	res.DaysLeft = int(left.Hours() / 24)
	if left < 0 {
		res.DaysLeft = -int((-left).Hours()/24) - 1
		res.Status, res.Error = Down, fmt.Sprintf("TLS error: certificate of %s expired on %s", serverName, leaf.NotAfter.UTC().Format(time.RFC3339))
		return
	}
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: serverName, Roots: roots, Intermediates: inter, CurrentTime: now}); err != nil {
		res.Status, res.Error = Down, reason(ctx, err, r.p.Address, r.timeout)
		return
	}
	if min, ok := tlsVersions[r.p.MinVersion]; ok && state.Version < min {
		res.Status, res.Error = Down, fmt.Sprintf("%s negotiated TLS %s, below min_version %s", r.p.Address, tlsVersionName(state.Version), r.p.MinVersion)
		return
	}
	if res.DaysLeft < r.p.MinDays {
		res.Status, res.Error = Down, fmt.Sprintf("certificate of %s expires in %d days (on %s), fewer than min_days %d", serverName, res.DaysLeft, leaf.NotAfter.UTC().Format(time.DateOnly), r.p.MinDays)
		return
	}
	res.Status = Up
	if prog != nil {
		env := config.TLSEnv{Duration: res.Phases.TLS, DaysLeft: res.DaysLeft, Version: tlsVersionName(state.Version)}
		if msg := evaluate(prog, env, r.p.Assert); msg != "" {
			res.Status, res.Error = Down, msg
		}
	}
}
