package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

const xssReason = `connection refused by <script>alert(1)</script>`

// probeSetup is a server whose configuration has three probes: shop/home
// with results (the newest down, with markup in its reason, and some old
// enough to be rolled up into minute buckets), shop/db never run, and
// billing/api up. A stored result of a probe no longer configured
// (shop/gone) must not show.
func probeSetup(t *testing.T) *bundle {
	t.Helper()
	cfg := testConfig()
	cfg.Services[0].Probes = []config.Probe{
		{Name: "home", Type: config.ProbeHTTP, Interval: "30s", URL: "https://shop.example.com/"},
		{Name: "db", Type: config.ProbeTCP, Interval: "1m", Address: "db.internal:5432"},
	}
	cfg.Services[1].Probes = []config.Probe{{Name: "api", Type: config.ProbeHTTP, Interval: "30s", URL: "https://billing.example.com/"}}
	b := setup(t, setupOpts{config: cfg})
	now := time.Now().UTC()
	old := now.Add(-10 * 24 * time.Hour)
	rows := []store.ProbeResultRow{
		{Service: "shop", Probe: "home", Status: "up", StartedAt: old, DurationMS: 40, Code: 200},
		{Service: "shop", Probe: "home", Status: "down", StartedAt: old.Add(time.Second), DurationMS: 60, Code: 500, Error: "status 500"},
		{Service: "shop", Probe: "home", Status: "up", StartedAt: now.Add(-2 * time.Minute), DurationMS: 35, Code: 200, Details: `{"phases":{"total_ms":35}}`},
		{Service: "shop", Probe: "home", Status: "down", StartedAt: now.Add(-time.Minute), DurationMS: 12, Error: xssReason},
		{Service: "billing", Probe: "api", Status: "up", StartedAt: now.Add(-time.Minute), DurationMS: 20, Code: 204},
		{Service: "shop", Probe: "gone", Status: "up", StartedAt: now.Add(-time.Minute)},
	}
	if err := b.store.InsertProbeResults(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	c, err := b.store.RollupProbeResults(t.Context(), now, 7*24*time.Hour, 30*24*time.Hour)
	if err != nil || c.Results != 2 {
		t.Fatalf("roll up: %+v, %v", c, err)
	}
	return b
}

func TestProbesAPI(t *testing.T) {
	t.Parallel()
	b := probeSetup(t)

	var list struct {
		Probes []probeStatusJSON `json:"probes"`
	}
	b.getJSON(t, "/api/v1/probes", b.viewer, http.StatusOK, &list)
	got := map[string]probeStatusJSON{}
	for _, p := range list.Probes {
		got[p.Service+"/"+p.Probe] = p
	}
	if len(list.Probes) != 3 || len(got) != 3 {
		t.Fatalf("probes: %+v", list.Probes)
	}
	if h := got["shop/home"]; h.Type != "http" || h.Status != "down" || h.LastRun == nil || h.DurationMS != 12 || h.Error != xssReason || h.Location != "local" {
		t.Errorf("shop/home: %+v", h)
	}
	if d := got["shop/db"]; d.Type != "tcp" || d.Status != statusNeverRun || d.LastRun != nil {
		t.Errorf("shop/db: %+v", d)
	}
	if a := got["billing/api"]; a.Status != "up" || a.Code != 204 {
		t.Errorf("billing/api: %+v", a)
	}
	// The raw shape: every field present, last_run null when never run.
	r := b.do(t, "GET", "/api/v1/probes?service=shop", b.viewer)
	for _, want := range []string{`"probes":[`, `"status":"never run","last_run":null,"duration_ms":0,"code":0,"error":""`, `"type":"http"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/api/v1/probes?service=shop lacks %s: %s", want, r.body)
		}
	}
	if strings.Contains(r.body, "billing") || strings.Contains(r.body, "gone") || strings.Contains(r.body, "shop.example.com") {
		t.Errorf("/api/v1/probes?service=shop shows too much: %s", r.body)
	}

	var detail probeDetailJSON
	b.getJSON(t, "/api/v1/probes/shop/home", b.viewer, http.StatusOK, &detail)
	if detail.Service != "shop" || detail.Probe != "home" || detail.Type != "http" || len(detail.Results) != 2 {
		t.Fatalf("detail: %+v", detail)
	}
	if res := detail.Results[0]; res.Status != "down" || res.Error != xssReason || string(res.Details) != "{}" {
		t.Errorf("newest result: %+v", res)
	}
	if res := detail.Results[1]; res.Code != 200 || !strings.Contains(string(res.Details), `"total_ms":35`) {
		t.Errorf("second result: %+v", res)
	}
	// Hour buckets: the rolled-up minute bucket from 10 days ago, and the
	// recent raw results.
	var runs, up, down int64
	for i, h := range detail.Rollups {
		if i > 0 && !h.Start.Before(detail.Rollups[i-1].Start) {
			t.Errorf("rollups not newest first: %+v", detail.Rollups)
		}
		if h.Start != h.Start.Truncate(time.Hour) {
			t.Errorf("bucket %s is not an hour", h.Start)
		}
		runs, up, down = runs+h.Runs, up+h.Up, down+h.Down
	}
	if len(detail.Rollups) < 2 || runs != 4 || up != 2 || down != 2 {
		t.Errorf("rollups: %+v", detail.Rollups)
	}

	b.getJSON(t, "/api/v1/probes/shop/home?limit=1", b.viewer, http.StatusOK, &detail)
	if len(detail.Results) != 1 || detail.Results[0].Status != "down" {
		t.Errorf("limit=1: %+v", detail.Results)
	}
	b.getJSON(t, "/api/v1/probes/shop/home?since=90s", b.viewer, http.StatusOK, &detail)
	if len(detail.Results) != 1 {
		t.Errorf("since=90s: %+v", detail.Results)
	}
	since := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	b.getJSON(t, "/api/v1/probes/shop/home?since="+since, b.viewer, http.StatusOK, &detail)
	if len(detail.Results) != 0 || detail.Results == nil {
		t.Errorf("since in the future: %+v", detail.Results)
	}
	b.getJSON(t, "/api/v1/probes/shop/db", b.viewer, http.StatusOK, &detail)
	if len(detail.Results) != 0 || len(detail.Rollups) != 0 {
		t.Errorf("never run: %+v", detail)
	}

	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/probes", "", http.StatusUnauthorized},
		{"/api/v1/probes/shop/home", "", http.StatusUnauthorized},
		{"/api/v1/probes/shop/gone", b.viewer, http.StatusNotFound},
		{"/api/v1/probes/nope/home", b.viewer, http.StatusNotFound},
		{"/api/v1/probes?service=nope", b.viewer, http.StatusNotFound},
		{"/api/v1/probes/shop/home?limit=0", b.viewer, http.StatusBadRequest},
		{"/api/v1/probes/shop/home?since=yesterday", b.viewer, http.StatusBadRequest},
		{"/api/v1/probes/shop/home", b.auditor, http.StatusOK},
	} {
		if r := b.do(t, "GET", tc.path, tc.token); r.StatusCode != tc.status {
			t.Errorf("GET %s: %d, want %d; %s", tc.path, r.StatusCode, tc.status, r.body)
		}
	}
}

func TestProbesUI(t *testing.T) {
	t.Parallel()
	b := probeSetup(t)
	cookie := "Cookie: " + cookieName + "=" + b.viewer

	for _, path := range []string{"/probes", "/probes/shop/home"} {
		r := b.do(t, "GET", path, "")
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next="+url.QueryEscape(path) {
			t.Errorf("GET %s without cookie: %d Location %q", path, r.StatusCode, r.Header.Get("Location"))
		}
	}

	r := b.do(t, "GET", "/probes", "", cookie)
	for _, want := range []string{
		"<h1>Probes</h1>", `<a href="/probes" aria-current="page">Probes</a>`,
		`href="/probes/shop/home"`, `href="/probes/billing/api"`,
		`<span class="badge status-down">down</span>`, `<span class="badge status-up">up</span>`,
		`<span class="badge status-never">never run</span>`, "&lt;script&gt;alert(1)&lt;/script&gt;", "12ms", "<td>204</td>",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/probes lacks %q:\n%s", want, r.body)
		}
	}
	if r.StatusCode != 200 || strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, "gone") {
		t.Errorf("/probes: %d, unescaped or unconfigured probe:\n%s", r.StatusCode, r.body)
	}

	r = b.do(t, "GET", "/probes/shop/home", "", cookie)
	for _, want := range []string{
		"<h1>shop/home</h1>", "http probe, every 30s", `class="availability"`,
		"50.00% up over 4 runs", `<span class="badge status-down">down</span>`, "&lt;script&gt;alert(1)&lt;/script&gt;", "35ms",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/probes/shop/home lacks %q:\n%s", want, r.body)
		}
	}
	_, bar, _ := strings.Cut(r.body, `class="availability"`)
	bar, _, _ = strings.Cut(bar, "</div>")
	if n := strings.Count(bar, `<span class="avail-`); n != int(availabilityWindow/time.Hour) {
		t.Errorf("availability bar has %d boxes", n)
	}
	// The old hour is half up; the recent runs (up, then down) fall in one
	// hour or two.
	if n := strings.Count(bar, `<span class="avail-none"`); n != int(availabilityWindow/time.Hour)-2 && n != int(availabilityWindow/time.Hour)-3 {
		t.Errorf("availability bar has %d hours without runs:\n%s", n, bar)
	}
	if !strings.Contains(bar, `class="avail-partial" title="`) || !strings.Contains(bar, "50.0% up (1 of 2 runs)") {
		t.Errorf("availability bar lacks the half-up hour:\n%s", bar)
	}
	if r.StatusCode != 200 || strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, "style=") {
		t.Errorf("/probes/shop/home: %d, unescaped or inline style:\n%s", r.StatusCode, r.body)
	}

	r = b.do(t, "GET", "/probes/shop/db", "", cookie)
	if r.StatusCode != 200 || !strings.Contains(r.body, "No runs in the last 30 days") || !strings.Contains(r.body, "has not run yet") {
		t.Errorf("/probes/shop/db: %d\n%s", r.StatusCode, r.body)
	}
	if r := b.do(t, "GET", "/probes/shop/nope", "", cookie); r.StatusCode != 404 || !strings.Contains(r.body, "shop/nope") {
		t.Errorf("/probes/shop/nope: %d\n%s", r.StatusCode, r.body)
	}
}
