package probe

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// ratelimit sends up to burst requests, one after another, within the
// window, and checks that the first expect_throttled_after requests pass
// and that a later one, within the burst, is throttled. The burst stops at
// the first throttled response.
func (r *runner) ratelimit(ctx context.Context, res *Result) {
	u, err := url.Parse(r.p.URL)
	if err != nil || u.Host == "" {
		res.Status, res.Error = Error, fmt.Sprintf("invalid url %q", r.p.URL)
		return
	}
	r.red.addURL(u)
	if !r.p.HostAllowed(u.Hostname()) {
		res.Status, res.Error = Error, fmt.Sprintf("refusing to flood %s: it is not loopback and not listed in allowed_hosts", u.Hostname())
		return
	}
	burst := min(r.p.Burst, config.MaxBurst)
	if burst <= 0 || r.p.ExpectThrottledAfter <= 0 || r.p.ExpectThrottledAfter >= burst {
		res.Status, res.Error = Error, fmt.Sprintf("invalid ratelimit settings: burst %d, expect_throttled_after %d", r.p.Burst, r.p.ExpectThrottledAfter)
		return
	}
	// A host listed by name in allowed_hosts may resolve anywhere; any
	// other (a loopback name) must also be dialed at a loopback address.
	listed := slices.ContainsFunc(r.p.AllowedHosts, func(h string) bool {
		return strings.EqualFold(strings.TrimSuffix(h, "."), strings.TrimSuffix(u.Hostname(), "."))
	})
	c, err := r.client(nil, 0, !listed)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	window := r.p.WindowDuration()
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	start := time.Now()
	req := request{method: r.p.Method, url: r.p.URL, body: r.p.Body, headers: r.p.Headers, basic: r.p.BasicAuth, bearer: r.p.BearerToken, maxBody: 64 << 10}
	for n := 1; n <= burst; n++ {
		ex, st, msg := r.roundTrip(wctx, c, req)
		res.Phases.Total = time.Since(start)
		if st != Up {
			res.Status, res.Error = st, fmt.Sprintf("request %d: %s", n, msg)
			if wctx.Err() != nil && ctx.Err() == nil {
				res.Error = fmt.Sprintf("burst did not finish within the window of %s: %d requests sent, none throttled", window, n-1)
			}
			return
		}
		res.Code = ex.status
		if ex.status == r.p.ThrottleStatus {
			res.ThrottledAt = n
			if n <= r.p.ExpectThrottledAfter {
				res.Status, res.Error = Down, fmt.Sprintf("throttled too early: request %d got %d, expected the first %d to pass", n, ex.status, r.p.ExpectThrottledAfter)
				return
			}
			res.Status = Up
			return
		}
		if ex.status >= 400 {
			res.Status, res.Error = Down, fmt.Sprintf("request %d got HTTP %d, neither a pass nor the throttle status %d", n, ex.status, r.p.ThrottleStatus)
			return
		}
	}
	res.Status, res.Error = Down, fmt.Sprintf("not throttled: all %d requests passed, expected status %d after %d", burst, r.p.ThrottleStatus, r.p.ExpectThrottledAfter)
}
