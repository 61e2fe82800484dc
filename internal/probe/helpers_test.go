package probe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// loadProbe loads a steward.yaml with one service whose probes are the
// given YAML list items, and returns the first probe.
func loadProbe(t *testing.T, probes string) *config.Probe {
	t.Helper()
	cfg, err := parse(t, probes)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	return &cfg.Services[0].Probes[0]
}

func parse(t *testing.T, probes string) (*config.Config, error) {
	t.Helper()
	var b strings.Builder
	b.WriteString("services:\n  - name: shop\n    probes:\n")
	for _, line := range strings.Split(strings.TrimSpace(probes), "\n") {
		b.WriteString("      " + line + "\n")
	}
	path := filepath.Join(t.TempDir(), "steward.yaml")
	return config.Parse(path, []byte(b.String()), config.LoadOptions{})
}

func run(t *testing.T, p *config.Probe, opts Options) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res := Run(ctx, p, opts)
	if el := time.Since(start); el > p.TimeoutDuration()+5*time.Second {
		t.Errorf("run took %s, longer than the timeout %s", el, p.TimeoutDuration())
	}
	t.Logf("%s: status=%s code=%d error=%q phases=%+v", p.Name, res.Status, res.Code, res.Error, res.Phases)
	return res
}

func wantStatus(t *testing.T, res Result, st Status, errPart string) {
	t.Helper()
	if res.Status != st {
		t.Errorf("status = %s, want %s (error %q)", res.Status, st, res.Error)
	}
	if errPart == "" && res.Error != "" && st == Up {
		t.Errorf("error = %q, want none", res.Error)
	}
	if errPart != "" && !strings.Contains(res.Error, errPart) {
		t.Errorf("error = %q, want it to contain %q", res.Error, errPart)
	}
}

// testCA is a certificate authority generated for a test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemFile string
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "steward test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pemFile: f}
}

// issue returns a server certificate for names, valid from notBefore to
// notAfter.
func (ca *testCA) issue(t *testing.T, notBefore, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
