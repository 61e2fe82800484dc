package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/store"
)

// sloSetup is a server whose shop/home probe has an availability objective
// and 100 results in the last hour, 10 of them down.
func sloSetup(t *testing.T) *bundle {
	t.Helper()
	cfg := testConfig()
	cfg.Services[0].Probes = []config.Probe{{Name: "home", Type: config.ProbeHTTP, Interval: "30s", URL: "https://shop.example.com/",
		Confirmations: 2, Alert: true, SLO: config.SLO{Availability: "99", Window: "7d"}}}
	b := setup(t, setupOpts{config: cfg})
	now := time.Now().UTC()
	var rows []store.ProbeResultRow
	for i := range 100 {
		st := "up"
		if i >= 90 {
			st = "down"
		}
		rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: "home", Status: st, StartedAt: now.Add(time.Duration(i-100) * 30 * time.Second), DurationMS: 20})
	}
	if err := b.store.InsertProbeResults(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSLOAPI(t *testing.T) {
	t.Parallel()
	b := sloSetup(t)
	var st slowatch.Status
	b.getJSON(t, "/api/v1/slo?service=shop", b.viewer, http.StatusOK, &st)
	if len(st.Objectives) != 1 {
		t.Fatalf("objectives = %+v", st.Objectives)
	}
	o := st.Objectives[0]
	if o.Service != "shop" || o.Probe != "home" || o.Objective != "availability" || o.Target != 99 || o.Window != "7d" ||
		o.Counted != 100 || o.Good != 90 || o.SLI != 0.9 || o.BudgetRemaining > -8.9 || o.BudgetRemaining < -9.1 {
		t.Errorf("objective = %+v", o)
	}
	if len(o.BurnRates) != 5 || o.BurnRates[0].Window != "3d" || len(o.Firing) == 0 {
		t.Errorf("burn rates %+v firing %+v", o.BurnRates, o.Firing)
	}
	// No evaluation ran: the state is unknown and nothing is open.
	if len(st.Probes) != 1 || st.Probes[0].State != slowatch.StateUnknown || len(st.Alerts) != 0 {
		t.Errorf("probes %+v alerts %+v", st.Probes, st.Alerts)
	}
	b.getJSON(t, "/api/v1/slo", b.viewer, http.StatusOK, &st)
	if len(st.Objectives) != 1 {
		t.Errorf("all services: %+v", st.Objectives)
	}
	r := b.do(t, "GET", "/api/v1/slo?service=nope", b.viewer)
	if r.StatusCode != http.StatusNotFound || !strings.Contains(r.body, "nope") {
		t.Errorf("unknown service: %d %s", r.StatusCode, r.body)
	}
	if r := b.do(t, "GET", "/api/v1/slo", ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d", r.StatusCode)
	}
}

func TestProbePageSLOChart(t *testing.T) {
	t.Parallel()
	b := sloSetup(t)
	r := b.do(t, "GET", "/probes/shop/home", "", "Cookie: "+cookieName+"="+b.viewer)
	for _, want := range []string{
		"<h2>SLO and alerts</h2>", "<td>99%</td>", "<td>90.000%</td>", "100 counted",
		`<svg class="chart slo-chart"`, "Error budget remaining of shop/home, availability 99%", `<polyline class="series budget bad"`,
		"Burn rate of shop/home, availability, over 1h", "page at 14.4",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/probes/shop/home lacks %q", want)
		}
	}
	if r.StatusCode != 200 || strings.Contains(r.body, "style=") {
		t.Errorf("probe page: %d or inline style/script", r.StatusCode)
	}
	// The service page embeds each probe's SLO part and recent failures,
	// loaded by htmx from fragments.
	r2 := b.do(t, "GET", "/services/shop", "", "Cookie: "+cookieName+"="+b.viewer)
	for _, want := range []string{`hx-get="/probes/shop/home/slo"`, `hx-get="/probes/shop/home/failures"`} {
		if !strings.Contains(r2.body, want) {
			t.Errorf("/services/shop lacks %q", want)
		}
	}
	f := b.do(t, "GET", "/probes/shop/home/slo", "", "Cookie: "+cookieName+"="+b.viewer, "HX-Request: true")
	if f.StatusCode != 200 || !strings.Contains(f.body, "<h2>SLO and alerts</h2>") || !strings.Contains(f.body, `<svg class="chart slo-chart"`) || strings.Contains(f.body, "<html") {
		t.Errorf("SLO fragment: %d\n%s", f.StatusCode, f.body)
	}
	// 8 daily budget points (7d window) and 49 hourly burn points.
	if n := strings.Count(r.body, `class="point budget`); n != 8 {
		t.Errorf("%d budget points, want 8", n)
	}
	if n := strings.Count(r.body, `class="point burn"`); n != 49 {
		t.Errorf("%d burn points, want 49", n)
	}
}
