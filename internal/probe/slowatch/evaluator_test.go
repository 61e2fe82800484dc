package slowatch_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/testenv"
)

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

const shopYAML = `
services:
  - name: shop
    probes:
      - name: home
        type: http
        url: http://127.0.0.1:9/
        interval: 30s
        timeout: 5s
        slo: {availability: 99.9}
`

// A one-hour outage pages, a restart neither pages again nor forgets the
// alert, and recovery resolves it; every open and resolve reaches the
// webhook through the outbox with matching dedup keys.
func TestOutagePagesAndRecoveryResolves(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		b := setup(t, url, shopYAML)
		iv := 30 * time.Second
		last := b.checks(t, "shop", "home", "local", iv, t0, 0, 720, "up", 80*time.Millisecond) // 6h up
		if o := b.run(t, last.Add(10*time.Second)); o.Opened != 0 || o.Probes != 1 {
			t.Fatalf("healthy probe: %+v", o)
		}
		// One hour down, evaluated every minute as the checks arrive.
		for i := range 60 {
			last = b.checks(t, "shop", "home", "local", iv, t0, 720+2*i, 2, "down", 0)
			b.run(t, last.Add(10*time.Second))
		}
		open := b.open(t)
		for _, want := range []string{"shop/home/down", "shop/home/availability/page", "shop/home/availability/ticket"} {
			if _, ok := open[want]; !ok {
				t.Fatalf("after 1h down, open alerts = %v, want %s", keys(open), want)
			}
		}
		down := open["shop/home/down"]
		if down.Severity != "page" || !strings.Contains(down.Title, "connection refused") || down.DedupKey == "" {
			t.Errorf("down alert = %+v", down)
		}

		// Restart: a new evaluator on the same store opens nothing again.
		b.eval = b.newEvaluator(t)
		last = b.checks(t, "shop", "home", "local", iv, t0, 840, 2, "down", 0)
		if o := b.run(t, last.Add(10*time.Second)); o.Opened != 0 {
			t.Fatalf("after restart, opened %d alerts again", o.Opened)
		}
		again := b.open(t)
		if again["shop/home/down"].ID != down.ID || len(again) != len(open) {
			t.Fatalf("after restart open alerts = %v, want the same as before", again)
		}
		b.deliver(t)

		// Recovery: an hour up.
		for i := range 60 {
			last = b.checks(t, "shop", "home", "local", iv, t0, 842+2*i, 2, "up", 80*time.Millisecond)
			b.run(t, last.Add(10*time.Second))
		}
		open = b.open(t)
		if _, ok := open["shop/home/down"]; ok {
			t.Errorf("down alert still open after an hour up")
		}
		if _, ok := open["shop/home/availability/page"]; ok {
			t.Errorf("page still open after an hour up (the 30m short window is clean)")
		}
		if _, ok := open["shop/home/availability/ticket"]; !ok {
			t.Errorf("ticket resolved after an hour, but its 6h short window still holds the outage")
		}
		b.deliver(t)

		got := b.recv.payloads()
		opens, resolves := map[string]string{}, map[string]string{}
		for _, p := range got {
			if p.Resolve {
				resolves[p.Fields["alert"]] = p.DedupKey
			} else {
				opens[p.Fields["alert"]] = p.DedupKey
			}
		}
		if len(opens) != 3 || b.recv.bad != 0 {
			t.Fatalf("webhook got opens %v (%d rejected), want down, availability/page and availability/ticket once each", opens, b.recv.bad)
		}
		for _, name := range []string{"down", "availability/page"} {
			if resolves[name] == "" || resolves[name] != opens[name] {
				t.Errorf("%s: resolve dedup key %q, open %q: want the same", name, resolves[name], opens[name])
			}
		}
		if len(got) != 5 {
			t.Errorf("webhook got %d messages, want 3 opens and 2 resolves: %+v", len(got), got)
		}
		for _, p := range got {
			if p.Fields["alert"] == "down" && !p.Resolve && (p.Event != slowatch.EventProbeDown || p.Severity != "critical") {
				t.Errorf("down alert sent as %s/%s", p.Event, p.Severity)
			}
			if p.Fields["alert"] == "down" && p.Resolve && p.Fields["state"] != "recovered" {
				t.Errorf("resolve of down says state %q", p.Fields["state"])
			}
		}
		b.mu.Lock()
		audits := slices.Clone(b.audits)
		b.mu.Unlock()
		if !slices.Contains(audits, "system:slo probe.alert.open probe:shop/home ok") || !slices.Contains(audits, "system:slo probe.alert.resolve probe:shop/home ok") {
			t.Errorf("audit = %v, want opens and resolves of probe:shop/home", audits)
		}

		// The metrics of the last evaluation.
		if v := b.gauge(t, "steward_probe_alert_open", "shop", "home", "availability/ticket", "ticket"); v != 1 {
			t.Errorf("steward_probe_alert_open for the ticket = %v", v)
		}
		if v := b.gauge(t, "steward_slo_budget_remaining_ratio", "shop", "home", "availability"); v >= 0 {
			t.Errorf("budget remaining = %v, want overspent (negative) after a 1h outage in 8h", v)
		}

		st, err := slowatch.Report(t.Context(), b.store, b.cfg, "shop", last.Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Objectives) != 1 || st.Objectives[0].Counted != 720+122+120 || st.Objectives[0].Good != 720+120 || st.Objectives[0].BudgetRemaining >= 0 {
			t.Errorf("report = %+v", st.Objectives)
		}
		if len(st.Probes) != 1 || st.Probes[0].State != slowatch.StateUp || len(st.Alerts) != 1 {
			t.Errorf("report probes %+v alerts %+v", st.Probes, st.Alerts)
		}
	})
}
