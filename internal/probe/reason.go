package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// reason turns a network error into a short, clear explanation. what
// names the target, timeout is the probe's.
func reason(ctx context.Context, err error, what string, timeout time.Duration) string {
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alert tls.AlertError
	var verifyErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("unresolvable host %s: no such host", dnsErr.Name)
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout:
		return fmt.Sprintf("resolve host %s: DNS lookup timed out", dnsErr.Name)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("resolve host %s: %s", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection refused by %s", what)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("connection reset by %s", what)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("%s is unreachable: %v", what, unwrapAll(err))
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("TLS error: certificate of %s is signed by an unknown authority (%s)", what, certName(unknownCA.Cert))
	case errors.As(err, &hostErr):
		return fmt.Sprintf("TLS error: certificate is not valid for %s: %v", hostErr.Host, hostErr)
	case errors.As(err, &invalid):
		return fmt.Sprintf("TLS error: %v", invalid)
	case errors.As(err, &verifyErr):
		return fmt.Sprintf("TLS error: %v", verifyErr.Err)
	case errors.As(err, &recordErr):
		return fmt.Sprintf("TLS error: %s does not speak TLS", what)
	case errors.As(err, &alert):
		return fmt.Sprintf("TLS error: %s refused the handshake: %v", what, alert)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		if ctx.Err() == context.Canceled {
			return "canceled"
		}
		return fmt.Sprintf("timed out after %s waiting for %s", timeout, what)
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return fmt.Sprintf("%s: %v", what, unwrapAll(err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unwrapAll returns the innermost error, dropping wrappers that repeat
// the URL or address.
func unwrapAll(err error) error {
	for {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
			continue
		}
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func certName(c *x509.Certificate) string {
	if c == nil {
		return "no certificate"
	}
	return "issuer " + c.Issuer.String()
}
