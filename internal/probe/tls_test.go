package probe

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"
)

// tlsListener serves TLS handshakes with cert on loopback, up to maxVersion.
func tlsListener(t *testing.T, cert tls.Certificate, maxVersion uint16) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: maxVersion})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	now := time.Now()
	good := tlsListener(t, ca.issue(t, now.Add(-time.Hour), now.Add(90*24*time.Hour+time.Hour), "shop.test", "127.0.0.1"), 0)
	soon := tlsListener(t, ca.issue(t, now.Add(-time.Hour), now.Add(5*24*time.Hour+time.Hour), "shop.test"), 0)
	expired := tlsListener(t, ca.issue(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour-time.Hour), "shop.test"), 0)
	old := tlsListener(t, ca.issue(t, now.Add(-time.Hour), now.Add(90*24*time.Hour), "shop.test"), tls.VersionTLS12)
	other := newCA(t)
	plain := tcpServer(t, func(c net.Conn) { fmt.Fprint(c, "SSH-2.0-OpenSSH\r\n") })

	tests := []struct {
		name, probe string
		status      Status
		errPart     string
		daysLeft    int
	}{
		{"valid", fmt.Sprintf(`{name: a, type: tls, address: %q, server_name: shop.test, ca_file: %q, min_version: "1.3", assert: "days_left > 80 && version == '1.3'"}`, good, ca.pemFile), Up, "", 90},
		{"ip address name", fmt.Sprintf(`{name: a, type: tls, address: %q, ca_file: %q}`, good, ca.pemFile), Up, "", 90},
		{"soon expiring", fmt.Sprintf(`{name: a, type: tls, address: %q, server_name: shop.test, ca_file: %q}`, soon, ca.pemFile), Down, "expires in 5 days", 5},
		{"soon expiring allowed", fmt.Sprintf(`{name: a, type: tls, address: %q, server_name: shop.test, ca_file: %q, min_days: 3}`, soon, ca.pemFile), Up, "", 5},
		{"expired", fmt.Sprintf(`{name: a, type: tls, address: %q, server_name: shop.test, ca_file: %q}`, expired, ca.pemFile), Down, "TLS error: certificate of shop.test expired on", -2},
		{"wrong host", fmt.Sprintf(`{name: a, type: tls, address: %q, server_name: www.other.test, ca_file: %q}`, good, ca.pemFile), Down, "certificate is not valid for www.other.test", 90},
		{"unknown authority", fmt.Sprintf(`{name: a, type: tls, address: %q, server_name: shop.test, ca_file: %q}`, good, other.pemFile), Down, "signed by an unknown authority", 90},
		{"old version", fmt.Sprintf(`{name: a, type: tls, address: %q, server_name: shop.test, ca_file: %q, min_version: "1.3"}`, old, ca.pemFile), Down, "negotiated TLS 1.2, below min_version 1.3", 89},
		{"not TLS", fmt.Sprintf(`{name: a, type: tls, address: %q, timeout: 2s}`, plain), Down, "does not speak TLS", 0},
		{"refused", fmt.Sprintf(`{name: a, type: tls, address: %q}`, freePort(t)), Down, "connection refused", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, loadProbe(t, "- "+tt.probe), Options{})
			wantStatus(t, res, tt.status, tt.errPart)
			if res.DaysLeft != tt.daysLeft {
				t.Errorf("days_left = %d, want %d", res.DaysLeft, tt.daysLeft)
			}
		})
	}
}
