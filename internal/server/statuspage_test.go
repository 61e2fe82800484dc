package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// Secrets-looking details of a probe that the public page must never show.
const (
	leakURL      = "https://internal-admin.shop.example/health?access_token=tok-SECRET-4242"
	leakError    = "connection refused by 10.1.2.3:8443 (db password hunter2)"
	leakLocation = "eu-secret-dc"
)

func statusSetup(t *testing.T, enabled bool) *bundle {
	t.Helper()
	cfg := testConfig()
	cfg.Steward.StatusPage = config.StatusPage{Enabled: enabled, Title: "Shop status", Services: []string{"shop"}}
	cfg.Services[0].Probes = []config.Probe{
		{Name: "home", Type: config.ProbeHTTP, Interval: "30s", URL: leakURL},
		{Name: "api", Type: config.ProbeHTTP, Interval: "30s", URL: leakURL, Locations: []string{leakLocation, "local"}, Quorum: 1},
		{Name: "db", Type: config.ProbeTCP, Interval: "1m", Address: "db.internal:5432"},
	}
	cfg.Services[1].Probes = []config.Probe{{Name: "ledger", Type: config.ProbeHTTP, Interval: "30s", URL: "https://billing.example.com/"}}
	b := setup(t, setupOpts{config: cfg})
	now := time.Now().UTC()
	noon := now.Truncate(24 * time.Hour).Add(-12 * time.Hour)
	rows := []store.ProbeResultRow{
		// Yesterday: 3 of 4 runs up.
		{Service: "shop", Probe: "home", Status: "up", StartedAt: noon},
		{Service: "shop", Probe: "home", Status: "up", StartedAt: noon.Add(time.Minute)},
		{Service: "shop", Probe: "home", Status: "up", StartedAt: noon.Add(2 * time.Minute)},
		{Service: "shop", Probe: "home", Status: "down", StartedAt: noon.Add(3 * time.Minute), Error: leakError},
		// Now: home is up; api is down from a secret location.
		{Service: "shop", Probe: "home", Status: "up", StartedAt: now.Add(-10 * time.Second), Details: `{"url":"` + leakURL + `"}`},
		{Service: "shop", Probe: "api", Location: leakLocation, Status: "down", StartedAt: now.Add(-10 * time.Second), Error: leakError,
			Details: `{"result":{"error":"` + leakError + `"}}`},
		// Billing is not on the page.
		{Service: "billing", Probe: "ledger", Status: "down", StartedAt: now.Add(-10 * time.Second), Error: "billing is broken"},
	}
	if err := b.store.InsertProbeResults(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.InsertProbeArtifacts(t.Context(), []store.ProbeArtifact{{Service: "shop", Probe: "api", Location: leakLocation,
		StartedAt: now.Add(-10 * time.Second), Name: "console.log", Kind: store.ArtifactConsole, ContentType: "text/plain", Data: []byte(leakError)}}); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPublicStatusPage(t *testing.T) {
	t.Parallel()
	b := statusSetup(t, true)

	// No token, no cookie.
	r := b.do(t, "GET", "/status.json", "")
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(r.Header.Get("Cache-Control"), "public") {
		t.Fatalf("GET /status.json: %d %q %q: %s", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"), r.body)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Title != "Shop status" || len(st.Services) != 1 || st.Services[0].Name != "shop" {
		t.Fatalf("status = %+v", st)
	}
	shop := st.Services[0]
	states := map[string]string{}
	for _, p := range shop.Probes {
		states[p.Name] = p.Status
	}
	// api: down at one of its two locations, quorum 1: down. db: never run.
	if states["home"] != "up" || states["api"] != "down" || states["db"] != "unknown" || shop.Status != "degraded" || st.Status != "degraded" {
		t.Errorf("states = %v, shop %s, overall %s", states, shop.Status, st.Status)
	}
	if len(shop.Days) != statusDays || shop.Days[statusDays-1].Date != time.Now().UTC().Format(time.DateOnly) {
		t.Fatalf("%d days, last %+v", len(shop.Days), shop.Days[len(shop.Days)-1])
	}
	yesterday := shop.Days[statusDays-2]
	if yesterday.Availability == nil || *yesterday.Availability != 75 {
		t.Errorf("yesterday = %+v, want 75%% up", yesterday)
	}
	if shop.Availability == nil || *shop.Availability <= 0 || *shop.Availability >= 100 || shop.Days[0].Availability != nil {
		t.Errorf("availability = %v, first day %+v", shop.Availability, shop.Days[0])
	}

	page := b.do(t, "GET", "/status", "")
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /status: %d %s", page.StatusCode, page.body)
	}
	for _, want := range []string{"<title>Shop status</title>", `name="viewport"`, "Some systems are not working as they should",
		`<span class="state state-down">down</span>`, `class="avail-partial" title="` + yesterday.Date + `: 75.00% up"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("/status lacks %s:\n%s", want, page.body)
		}
	}
	// Nothing internal: no URL, error text, location, artifact, user or
	// service not chosen.
	for _, body := range []string{r.body, page.body} {
		for _, leak := range []string{"internal-admin", "tok-SECRET", "access_token", "hunter2", "10.1.2.3", leakLocation, "local",
			"/api/v1/", "artifact", "console.log", "billing", "ledger", "@example.com", "team-shop", "pager.example.com", "db.internal"} {
			if strings.Contains(body, leak) {
				t.Errorf("the public status page shows %q:\n%s", leak, body)
			}
		}
	}
}

// The page is rendered at most once per statusTTL: a result written in
// between does not show until the rendering expires.
func TestPublicStatusPageCached(t *testing.T) {
	t.Parallel()
	b := statusSetup(t, true)
	first := b.do(t, "GET", "/status.json", "")
	if err := b.store.InsertProbeResults(t.Context(), []store.ProbeResultRow{
		{Service: "shop", Probe: "home", Status: "down", StartedAt: time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	if again := b.do(t, "GET", "/status.json", ""); again.body != first.body {
		t.Errorf("rendered again within %s:\n%s\n%s", statusTTL, first.body, again.body)
	}
	if r := b.do(t, "GET", "/status.json", "", "If-None-Match: "+first.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", r.StatusCode)
	}
	sp := &b.srv.status
	sp.mu.Lock()
	sp.cached.at = sp.cached.at.Add(-statusTTL) // expired
	sp.mu.Unlock()
	var st statusJSON
	b.getJSON(t, "/status.json", "", http.StatusOK, &st)
	if st.Services[0].Probes[0].Status != "down" {
		t.Errorf("after %s: home is %s, want down", statusTTL, st.Services[0].Probes[0].Status)
	}
}

func TestPublicStatusPageDisabled(t *testing.T) {
	t.Parallel()
	b := statusSetup(t, false)
	for _, path := range []string{"/status", "/status.json"} {
		if r := b.do(t, "GET", path, ""); r.StatusCode != http.StatusNotFound || strings.Contains(r.body, "shop") {
			t.Errorf("GET %s when disabled: %d %s", path, r.StatusCode, r.body)
		}
	}
}

func TestCombineStates(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		parts []string
		want  string
	}{
		{nil, stateUnknown},
		{[]string{stateUnknown}, stateUnknown},
		{[]string{stateUp, stateUnknown}, stateUp},
		{[]string{stateDown, stateDown}, stateDown},
		{[]string{stateUp, stateDown}, stateDegraded},
		{[]string{stateDegraded, stateUp}, stateDegraded},
	} {
		if got := combineStates(tt.parts); got != tt.want {
			t.Errorf("combineStates(%v) = %s, want %s", tt.parts, got, tt.want)
		}
	}
}

// BenchmarkPublicStatusBuild measures one uncached rendering's store work
// over a realistic history: 5 probes, a run every 2 minutes for 90 days,
// rolled up as the server does (raw for a day here, minutes for a week,
// hours after).
func BenchmarkPublicStatusBuild(b *testing.B) {
	cfg := testConfig()
	cfg.Steward.StatusPage = config.StatusPage{Enabled: true, Title: "Shop status", Services: []string{"shop"}}
	for i := range 5 {
		cfg.Services[0].Probes = append(cfg.Services[0].Probes, config.Probe{Name: fmt.Sprintf("p%d", i), Type: config.ProbeHTTP, Interval: "2m", URL: "https://shop.example.com/"})
	}
	bd := setup(b, setupOpts{config: cfg, quiet: true})
	now := time.Now().UTC()
	var rows []store.ProbeResultRow
	for t := now.Add(-statusDays * 24 * time.Hour); t.Before(now); t = t.Add(2 * time.Minute) {
		for i := range 5 {
			st := "up"
			if t.Minute()%50 == 0 && i == 0 {
				st = "down"
			}
			rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: fmt.Sprintf("p%d", i), Status: st, StartedAt: t, DurationMS: 20})
		}
	}
	ctx := context.Background()
	if err := bd.store.InsertProbeResults(ctx, rows); err != nil {
		b.Fatal(err)
	}
	if _, err := bd.store.RollupProbeResults(ctx, now, 24*time.Hour, 7*24*time.Hour); err != nil {
		b.Fatal(err)
	}
	conf := bd.srv.status.conf.Load()
	b.ReportMetric(float64(len(rows)), "runs")
	b.ResetTimer()
	for b.Loop() {
		st, err := bd.srv.buildStatus(ctx, conf, now)
		if err != nil || st.Services[0].Availability == nil {
			b.Fatal(st, err)
		}
	}
}

// A store failure is a plain 503 that says nothing of the store.
func TestPublicStatusPageStoreDown(t *testing.T) {
	t.Parallel()
	b := statusSetup(t, true)
	b.store.Close()
	for _, path := range []string{"/status", "/status.json"} {
		r := b.do(t, "GET", path, "")
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" ||
			strings.Contains(r.body, "sql") || strings.Contains(r.body, "steward.db") || !strings.Contains(r.body, "temporarily unavailable") {
			t.Errorf("GET %s with the store closed: %d %s", path, r.StatusCode, r.body)
		}
	}
}
