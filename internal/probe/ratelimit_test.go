package probe

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// limited returns a server that lets limit requests pass, then answers
// status 429, and counts every request.
func limited(t *testing.T, limit int64, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if n.Add(1) > limit {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		limit        int64
		delay        time.Duration
		probe        string
		status       Status
		errPart      string
		wantRequests int64
	}{
		{"throttled at threshold", 10, 0, `burst: 50, expect_throttled_after: 10`, Up, "", 11},
		{"throttled a little later", 12, 0, `burst: 50, expect_throttled_after: 10`, Up, "", 13},
		{"throttled too early", 3, 0, `burst: 50, expect_throttled_after: 10`, Down, "throttled too early: request 4 got 429, expected the first 10 to pass", 4},
		{"never throttled", 1000, 0, `burst: 30, expect_throttled_after: 10`, Down, "not throttled: all 30 requests passed", 30},
		{"window too short", 1000, 100 * time.Millisecond, `burst: 100, expect_throttled_after: 10, window: 1s`, Down, "burst did not finish within the window of 1s", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, n := limited(t, tt.limit, tt.delay)
			p := loadProbe(t, fmt.Sprintf(`- {name: flood, type: ratelimit, url: %q, %s}`, srv.URL, tt.probe))
			res := run(t, p, Options{})
			wantStatus(t, res, tt.status, tt.errPart)
			if tt.wantRequests >= 0 && n.Load() != tt.wantRequests {
				t.Errorf("server saw %d requests, want %d", n.Load(), tt.wantRequests)
			}
		})
	}
}

func TestRateLimitGuard(t *testing.T) {
	t.Parallel()
	srv, n := limited(t, 5, 0)
	// A probe built without validation still refuses a non-loopback host.
	p := loadProbe(t, fmt.Sprintf(`- {name: flood, type: ratelimit, url: %q, burst: 10, expect_throttled_after: 5}`, srv.URL))
	p.URL = "http://192.0.2.1/"
	res := run(t, p, Options{})
	wantStatus(t, res, Error, "refusing to flood 192.0.2.1")
	// A loopback name that resolves elsewhere is refused at dial time.
	dns := startDNS(t, map[string][]string{"api.test.": {"127.0.0.1"}, "evil.localhost.": {"192.0.2.1"}})
	port := srv.URL[len("http://127.0.0.1:"):]
	p = loadProbe(t, fmt.Sprintf(`- {name: flood, type: ratelimit, url: %q, burst: 10, expect_throttled_after: 5}`, "http://evil.localhost:"+port))
	res = run(t, p, Options{Resolver: dns.resolver()})
	wantStatus(t, res, Error, "refusing to flood 192.0.2.1")
	// A name listed in allowed_hosts may be flooded.
	p = loadProbe(t, fmt.Sprintf(`- {name: flood, type: ratelimit, url: %q, burst: 10, expect_throttled_after: 5, allowed_hosts: [api.test]}`,
		"http://api.test:"+port))
	res = run(t, p, Options{Resolver: dns.resolver()})
	wantStatus(t, res, Up, "")
	if n.Load() != 6 {
		t.Errorf("server saw %d requests, want 6", n.Load())
	}
}
