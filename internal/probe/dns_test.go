package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a small authoritative DNS server on loopback UDP for tests.
// Records map an absolute name to answers: "1.2.3.4" for A, "txt:..." for
// TXT, "mx:10 mail.example." for MX, "cname:target." for CNAME.
type dnsServer struct {
	addr    string
	queries atomic.Int64
}

func startDNS(t *testing.T, records map[string][]string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String()}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.queries.Add(1)
			if resp, err := answer(buf[:n], records); err == nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return s
}

// resolver returns a Go resolver that asks only this server.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.addr)
	}}
}

func answer(req []byte, records map[string][]string) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(q.Name.String())
	vals, known := records[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	for _, v := range vals {
		kind, rest, _ := strings.Cut(v, ":")
		switch {
		case q.Type == dnsmessage.TypeA && kind != "txt" && kind != "mx" && kind != "cname":
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() {
				continue
			}
			err = b.AResource(hdr, dnsmessage.AResource{A: a.As4()})
			if err != nil {
				return nil, err
			}
		case q.Type == dnsmessage.TypeTXT && kind == "txt":
			if err := b.TXTResource(hdr, dnsmessage.TXTResource{TXT: []string{rest}}); err != nil {
				return nil, err
			}
		case q.Type == dnsmessage.TypeMX && kind == "mx":
			var pref uint16
			var host string
			if _, err := fmt.Sscanf(rest, "%d %s", &pref, &host); err != nil {
				return nil, err
			}
			if err := b.MXResource(hdr, dnsmessage.MXResource{Pref: pref, MX: dnsmessage.MustNewName(host)}); err != nil {
				return nil, err
			}
		case kind == "cname" && (q.Type == dnsmessage.TypeCNAME || q.Type == dnsmessage.TypeA):
			if err := b.CNAMEResource(hdr, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(rest)}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

func TestDNS(t *testing.T) {
	t.Parallel()
	srv := startDNS(t, map[string][]string{
		"shop.test.":  {"127.0.0.10", "127.0.0.11", "txt:v=spf1 -all", "mx:10 mail.shop.test."},
		"empty.test.": {},
	})
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })

	tests := []struct {
		name, probe string
		status      Status
		errPart     string
		answers     []string
	}{
		{"A", fmt.Sprintf(`{name: a, type: dns, query: shop.test, resolver: %q, expect: [127.0.0.11]}`, srv.addr), Up, "", []string{"127.0.0.10", "127.0.0.11"}},
		{"A missing answer", fmt.Sprintf(`{name: a, type: dns, query: shop.test, resolver: %q, expect: [127.0.0.99]}`, srv.addr), Down, `expected answer "127.0.0.99" is missing (got 127.0.0.10, 127.0.0.11)`, nil},
		{"TXT", fmt.Sprintf(`{name: a, type: dns, query: shop.test, record_type: TXT, resolver: %q, expect: ["v=spf1 -all"]}`, srv.addr), Up, "", []string{"v=spf1 -all"}},
		{"MX", fmt.Sprintf(`{name: a, type: dns, query: shop.test., record_type: MX, resolver: %q, expect: [MAIL.shop.test.]}`, srv.addr), Up, "", []string{"mail.shop.test"}},
		{"assert answers", fmt.Sprintf(`{name: a, type: dns, query: shop.test, resolver: %q, assert: "len(answers) == 2 && '127.0.0.10' in answers && duration < 2s"}`, srv.addr), Up, "", nil},
		{"NXDOMAIN", fmt.Sprintf(`{name: a, type: dns, query: gone.test, resolver: %q}`, srv.addr), Down, "no A record for gone.test. (asked " + srv.addr + ")", nil},
		{"no records of type", fmt.Sprintf(`{name: a, type: dns, query: empty.test, resolver: %q}`, srv.addr), Down, "no A record for empty.test.", nil},
		{"silent resolver", fmt.Sprintf(`{name: a, type: dns, query: shop.test, resolver: %q, timeout: 1s}`, silent.LocalAddr().String()), Down, "look up A shop.test. via " + silent.LocalAddr().String(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, loadProbe(t, "- "+tt.probe), Options{})
			wantStatus(t, res, tt.status, tt.errPart)
			if tt.answers != nil && strings.Join(res.Answers, ",") != strings.Join(tt.answers, ",") {
				t.Errorf("answers = %q, want %q", res.Answers, tt.answers)
			}
		})
	}
	if srv.queries.Load() == 0 {
		t.Error("the test DNS server was never asked")
	}
}
