package slowatch_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/testenv"
)

// Slow checks make a probe with a latency objective degraded (a ticket),
// a service objective pages for the whole service, alert: false sends
// nothing, and removing a probe from the config resolves its alerts.
func TestLatencyServiceObjectiveAndRemoval(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		b := setup(t, url, `
services:
  - name: shop
    slo: {availability: 99, windows: [{severity: page, long: 1h, short: 5m, burn_rate: 5}]}
    probes:
      - {name: api, type: http, url: "http://127.0.0.1:9/", interval: 30s, timeout: 5s, slo: {latency: {threshold: 300ms, target: 90}, windows: []}}
      - {name: quiet, type: http, url: "http://127.0.0.1:9/", interval: 30s, timeout: 5s, alert: false}
`)
		iv := 30 * time.Second
		b.checks(t, "shop", "api", "local", iv, t0, 0, 120, "up", 100*time.Millisecond)
		b.checks(t, "shop", "quiet", "local", iv, t0, 0, 100, "up", 100*time.Millisecond)
		b.checks(t, "shop", "quiet", "local", iv, t0, 100, 24, "down", 0)
		last := b.checks(t, "shop", "api", "local", iv, t0, 120, 4, "up", 900*time.Millisecond) // slow
		b.run(t, last.Add(10*time.Second))
		open := b.open(t)
		if a, ok := open["shop/api/degraded"]; !ok || a.Severity != "ticket" {
			t.Fatalf("slow checks: open = %v, want shop/api/degraded as a ticket", keys(open))
		}
		for name := range open {
			if name == "shop/quiet/down" {
				t.Errorf("alert: false opened %s", name)
			}
		}
		// quiet's 24 failures among 248 checks of the service in the last
		// hour burn the service's budget: 24/248/0.01 > 5.
		b.run(t, last.Add(40*time.Second))
		open = b.open(t)
		if a, ok := open["shop//availability/page"]; !ok || a.Probe != "" {
			t.Fatalf("service objective: open = %v, want shop//availability/page", keys(open))
		}
		st, err := slowatch.Report(t.Context(), b.store, b.cfg, "shop", last.Add(40*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Objectives) != 2 || st.Objectives[0].Probe != "" || st.Objectives[1].Objective != "latency" || st.Objectives[1].Good != 120 {
			t.Errorf("objectives = %+v", st.Objectives)
		}
		if got := b.gauge(t, "steward_slo_sli_ratio", "shop", "", "availability"); got != 224.0/248 {
			t.Errorf("service SLI gauge = %v", got)
		}

		// The probes are removed from the config: their alerts resolve.
		dir := t.TempDir()
		path := filepath.Join(dir, "steward.yaml")
		if err := os.WriteFile(path, []byte("steward: {data_dir: "+dir+"}\nservices:\n  - name: shop\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if b.cfg, err = config.Load(path, config.LoadOptions{}); err != nil {
			t.Fatal(err)
		}
		if o := b.run(t, last.Add(70*time.Second)); o.Resolved != 2 || len(b.open(t)) != 0 {
			t.Fatalf("after removal: %+v, open %v", o, keys(b.open(t)))
		}
		b.deliver(t)
		resolves := 0
		for _, p := range b.recv.payloads() {
			if p.Resolve && p.Fields["state"] == "no longer configured" || p.Resolve && p.Event == slowatch.EventSLOBurn {
				resolves++
			}
		}
		if resolves != 2 {
			t.Errorf("webhook got %d resolves of removed alerts: %+v", resolves, b.recv.payloads())
		}
	})
}
