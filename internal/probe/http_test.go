package probe

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsServer starts an HTTPS server on loopback with a certificate from a
// CA generated for the test.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, *testCA) {
	t.Helper()
	ca := newCA(t)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), "127.0.0.1", "localhost", "shop.test")}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, ca
}

func shopHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/items", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"items": []any{map[string]any{"id": 7}}})
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html>not json</html>")
	})
	mux.HandleFunc("/secure", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cr3t-token" || r.Header.Get("X-Api-Key") != "k3y-value" {
			http.Error(w, "denied", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/items", http.StatusFound)
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 64<<10)
		for range 40 {
			if _, err := fmt.Fprint(w, chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow-body", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "start")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	mux.HandleFunc("/slow-header", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/status/"), "%d", &code)
		w.WriteHeader(code)
	})
	return mux
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	srv, ca := tlsServer(t, shopHandler())
	plain := httptest.NewServer(shopHandler())
	t.Cleanup(plain.Close)
	tokenRef := secretFile(t, "s3cr3t-token")
	keyRef := secretFile(t, "k3y-value")
	ca2 := newCA(t) // trusts nothing the server presents
	refused := freePort(t)

	tests := []struct {
		name, probe string
		status      Status
		errPart     string
	}{
		{"json assertion over TLS", fmt.Sprintf(`{name: a, type: http, url: %q, ca_file: %q, assert: "status == 200 && duration < 5s && json.items.size() > 0 && json.items[0].id == 7 && headers['content-type'] startsWith 'application/json'"}`, srv.URL+"/items", ca.pemFile), Up, ""},
		{"default status rule", fmt.Sprintf(`{name: a, type: http, url: %q}`, plain.URL+"/status/204"), Up, ""},
		{"server error", fmt.Sprintf(`{name: a, type: http, url: %q}`, plain.URL+"/status/503"), Down, "unexpected HTTP status 503"},
		{"assertion false", fmt.Sprintf(`{name: a, type: http, url: %q, assert: "status == 201"}`, plain.URL+"/items"), Down, "assertion failed: status == 201"},
		{"invalid json for assertion", fmt.Sprintf(`{name: a, type: http, url: %q, assert: "json.items.size() > 0"}`, plain.URL+"/html"), Down, "response body is not valid JSON, which the assertion needs"},
		{"body assertion without json", fmt.Sprintf(`{name: a, type: http, url: %q, assert: "body contains 'not json'"}`, plain.URL+"/html"), Up, ""},
		{"unknown CA", fmt.Sprintf(`{name: a, type: http, url: %q, ca_file: %q}`, srv.URL+"/items", ca2.pemFile), Down, "TLS error: certificate of"},
		{"system roots reject test CA", fmt.Sprintf(`{name: a, type: http, url: %q}`, srv.URL+"/items"), Down, "TLS error"},
		{"skip verify", fmt.Sprintf(`{name: a, type: http, url: %q, tls_skip_verify: true}`, srv.URL+"/items"), Up, ""},
		{"plain http to TLS port", fmt.Sprintf(`{name: a, type: http, url: %q}`, strings.Replace(srv.URL, "https", "http", 1)), Down, "unexpected HTTP status 400"},
		{"https to plain port", fmt.Sprintf(`{name: a, type: http, url: %q}`, strings.Replace(plain.URL, "http", "https", 1)), Down, "server gave HTTP response to HTTPS client"},
		{"connection refused", fmt.Sprintf(`{name: a, type: http, url: "http://%s/"}`, refused), Down, "connection refused by http://" + refused},
		{"redirect loop", fmt.Sprintf(`{name: a, type: http, url: %q}`, plain.URL+"/loop"), Down, "too many redirects (more than 10)"},
		{"one redirect", fmt.Sprintf(`{name: a, type: http, url: %q, follow_redirects: 1, assert: "json.items.size() == 1"}`, plain.URL+"/hop"), Up, ""},
		{"no redirects", fmt.Sprintf(`{name: a, type: http, url: %q, follow_redirects: 0, assert: "status == 302 && headers.Location == '/items'"}`, plain.URL+"/hop"), Up, ""},
		{"huge body", fmt.Sprintf(`{name: a, type: http, url: %q, max_body: 100000}`, plain.URL+"/huge"), Down, "too large: more than max_body (100000 bytes)"},
		{"slow body", fmt.Sprintf(`{name: a, type: http, url: %q, timeout: 1s}`, plain.URL+"/slow-body"), Down, "timed out after 1s"},
		{"slow header", fmt.Sprintf(`{name: a, type: http, url: %q, timeout: 1s}`, plain.URL+"/slow-header"), Down, "timed out after 1s"},
		{"secrets", fmt.Sprintf(`{name: a, type: http, url: %q, bearer_token: %q, headers: {X-Api-Key: %q}, assert: "body == 'ok'"}`, plain.URL+"/secure", tokenRef, keyRef), Up, ""},
		{"missing secret", fmt.Sprintf(`{name: a, type: http, url: %q, bearer_token: "file:/nonexistent/token"}`, plain.URL+"/secure"), Error, "resolve bearer_token: read secret file /nonexistent/token"},
		{"missing ca file", fmt.Sprintf(`{name: a, type: http, url: %q, ca_file: /nonexistent/ca.pem}`, srv.URL), Error, "read ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, loadProbe(t, "- "+tt.probe), Options{})
			wantStatus(t, res, tt.status, tt.errPart)
		})
	}
}

func TestHTTPPhases(t *testing.T) {
	t.Parallel()
	srv, ca := tlsServer(t, shopHandler())
	dns := startDNS(t, map[string][]string{"shop.test.": {"127.0.0.1"}})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p := loadProbe(t, fmt.Sprintf(`- {name: a, type: http, url: "https://shop.test:%s/items", ca_file: %q}`, port, ca.pemFile))
	res := run(t, p, Options{Resolver: dns.resolver()})
	wantStatus(t, res, Up, "")
	ph := res.Phases
	if ph.DNS <= 0 || ph.Connect <= 0 || ph.TLS <= 0 || ph.FirstByte <= 0 || ph.Total < ph.FirstByte {
		t.Errorf("phases = %+v, want every phase measured", ph)
	}
}

func TestHTTPUnresolvable(t *testing.T) {
	t.Parallel()
	dns := startDNS(t, map[string][]string{})
	p := loadProbe(t, `- {name: a, type: http, url: "http://nowhere.test/"}`)
	res := run(t, p, Options{Resolver: dns.resolver()})
	wantStatus(t, res, Down, "unresolvable host nowhere.test: no such host")
}

func TestHTTPRedaction(t *testing.T) {
	t.Parallel()
	refused := freePort(t)
	p := loadProbe(t, fmt.Sprintf(`- {name: a, type: http, url: "http://%s/x?access_token=tok-in-query&page=2", basic_auth: {username: bob, password: %q}, headers: {X-Session: %q}}`, refused, secretFile(t, "hunter2-pass"), secretFile(t, "hdr-secret-value")))
	res := run(t, p, Options{})
	wantStatus(t, res, Down, "connection refused")
	b, _ := json.Marshal(res)
	for _, secret := range []string{"tok-in-query", "hunter2-pass", "hdr-secret-value"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("result leaks %q: %s", secret, b)
		}
	}
	if !strings.Contains(res.Error, "access_token=REDACTED") || !strings.Contains(res.Error, "page=2") {
		t.Errorf("error = %q, want the token redacted and the rest kept", res.Error)
	}
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// secretFile writes a secret to a file and returns its file: reference.
func secretFile(t *testing.T, v string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + f
}
