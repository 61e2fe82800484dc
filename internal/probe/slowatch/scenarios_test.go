package slowatch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/testenv"
)

// An outage inside a maintenance window opens nothing, and its checks are
// left out of the budget.
func TestMaintenanceMutesAndIsExcluded(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		iv := 30 * time.Second
		// Series exclude whole minutes: the window covers the minutes of
		// the outage's checks.
		from := slot("shop", "home", iv, t0, 720).Truncate(time.Minute)
		to := slot("shop", "home", iv, t0, 839).Truncate(time.Minute).Add(time.Minute)
		b := setup(t, url, shopYAML+fmt.Sprintf("    maintenance:\n      - {from: %q, to: %q, reason: database upgrade}\n", from.Format(time.RFC3339), to.Format(time.RFC3339)))
		b.checks(t, "shop", "home", "local", iv, t0, 0, 720, "up", 80*time.Millisecond)
		var last time.Time
		for i := range 60 {
			last = b.checks(t, "shop", "home", "local", iv, t0, 720+2*i, 2, "down", 0)
			o := b.run(t, last.Add(10*time.Second))
			if o.Opened != 0 {
				t.Fatalf("opened %d alerts inside maintenance", o.Opened)
			}
		}
		st, err := slowatch.Report(t.Context(), b.store, b.cfg, "shop", last.Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		o := st.Objectives[0]
		if !o.Muted || o.MaintenanceReason != "database upgrade" || o.ExcludedMaintenance < 120 || o.ExcludedMaintenance > 122 ||
			o.SLI != 1 || o.Counted+o.ExcludedMaintenance != 840 || o.BudgetRemaining != 1 {
			t.Fatalf("status inside maintenance = %+v", o)
		}
		// After the window, up again: nothing was ever opened.
		last = b.checks(t, "shop", "home", "local", iv, t0, 840, 20, "up", 80*time.Millisecond)
		b.runEvery(t, to.Add(31*time.Second), last.Add(10*time.Second), time.Minute)
		if open := b.open(t); len(open) != 0 {
			t.Fatalf("open alerts after maintenance = %v", keys(open))
		}
		if len(b.recv.payloads()) != 0 {
			t.Fatalf("notifications were queued during maintenance")
		}
	})
}

// While a dependency is down, a dependent probe opens no alert; an alert
// it had open before still resolves.
func TestDependsOnSuppressesOpeningButResolves(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		b := setup(t, url, `
services:
  - name: shop
    probes:
      - {name: db, type: tcp, address: "127.0.0.1:9", interval: 1m, timeout: 5s}
      - {name: api, type: http, url: "http://127.0.0.1:9/", interval: 1m, timeout: 5s, depends_on: [db]}
`)
		iv := time.Minute
		up := func(name string, k, n int) time.Time {
			return b.checks(t, "shop", name, "local", iv, t0, k, n, "up", 10*time.Millisecond)
		}
		down := func(name string, k, n int) time.Time {
			return b.checks(t, "shop", name, "local", iv, t0, k, n, "down", 0)
		}
		// Both down together: only db opens.
		up("db", 0, 10)
		up("api", 0, 10)
		down("db", 10, 5)
		last := down("api", 10, 5)
		b.run(t, last.Add(50*time.Second))
		open := b.open(t)
		if _, ok := open["shop/db/down"]; !ok || len(open) != 1 {
			t.Fatalf("both down: open = %v, want shop/db/down only", keys(open))
		}
		// db recovers, api stays down: now api opens.
		up("db", 15, 5)
		last = down("api", 15, 5)
		b.run(t, last.Add(50*time.Second))
		open = b.open(t)
		if _, ok := open["shop/api/down"]; !ok || len(open) != 1 {
			t.Fatalf("db up, api down: open = %v, want shop/api/down only", keys(open))
		}
		// db down again; api recovers meanwhile: its alert still resolves.
		down("db", 20, 5)
		last = up("api", 20, 5)
		o := b.run(t, last.Add(50*time.Second))
		open = b.open(t)
		if _, ok := open["shop/api/down"]; ok || o.Resolved != 1 {
			t.Fatalf("api up while db down: open = %v, resolved %d; want api's alert resolved", keys(open), o.Resolved)
		}
		if _, ok := open["shop/db/down"]; !ok {
			t.Fatalf("db down again but not open: %v", keys(open))
		}
	})
}

// One failure of a sparse probe does not page, nor open a down alert with
// two confirmations.
func TestMinSamplesGuard(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		b := setup(t, url, `
services:
  - name: shop
    probes:
      - {name: home, type: http, url: "http://127.0.0.1:9/", interval: 10m, timeout: 5s, slo: {availability: 99.9}}
`)
		iv := 10 * time.Minute
		b.checks(t, "shop", "home", "local", iv, t0, 0, 36, "up", 10*time.Millisecond)
		last := b.checks(t, "shop", "home", "local", iv, t0, 36, 1, "down", 0)
		b.run(t, last.Add(time.Minute))
		b.run(t, last.Add(2*time.Minute))
		last = b.checks(t, "shop", "home", "local", iv, t0, 37, 3, "up", 10*time.Millisecond)
		b.run(t, last.Add(time.Minute))
		st, err := slowatch.Report(t.Context(), b.store, b.cfg, "", last.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		burn := map[string]float64{}
		for _, r := range st.Objectives[0].BurnRates {
			burn[r.Window] = r.Rate
		}
		if burn["1h"] < 14.4 {
			t.Fatalf("1h burn rate %v: the test needs a burn above the page threshold", burn["1h"])
		}
		for name := range b.open(t) {
			if name == "shop/home/down" || name == "shop/home/availability/page" {
				t.Errorf("one failure of a probe running every 10m opened %s", name)
			}
		}
	})
}

// With a quorum of 2 of 3 locations, one location that always fails does
// not make the target down and does not spend budget; the probe is
// degraded (a ticket), not down.
func TestQuorumOneBadLocationDoesNotPage(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		b := setup(t, url, `
services:
  - name: shop
    probes:
      - {name: home, type: http, url: "http://127.0.0.1:9/", interval: 1m, timeout: 5s, locations: [local, eu, us], quorum: 2, slo: {availability: 99.9}}
`)
		iv := time.Minute
		b.checks(t, "shop", "home", "local", iv, t0, 0, 120, "up", 10*time.Millisecond)
		b.checks(t, "shop", "home", "us", iv, t0, 0, 120, "up", 12*time.Millisecond)
		last := b.checks(t, "shop", "home", "eu", iv, t0, 0, 120, "down", 0)
		b.runEvery(t, last.Add(-10*time.Minute), last.Add(30*time.Second), time.Minute)
		open := b.open(t)
		for _, name := range []string{"shop/home/down", "shop/home/availability/page", "shop/home/availability/ticket"} {
			if _, ok := open[name]; ok {
				t.Errorf("one bad location of three opened %s", name)
			}
		}
		if _, ok := open["shop/home/degraded"]; !ok {
			t.Errorf("open = %v, want shop/home/degraded (a ticket)", keys(open))
		}
		st, err := slowatch.Report(t.Context(), b.store, b.cfg, "shop", last.Add(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		o := st.Objectives[0]
		if o.SLI != 1 || o.Counted != 120 || o.BudgetRemaining != 1 {
			t.Errorf("status = %+v, want every slot up by quorum", o)
		}
		// Two locations down: the target is down.
		b.checks(t, "shop", "home", "local", iv, t0, 120, 3, "up", 10*time.Millisecond)
		b.checks(t, "shop", "home", "us", iv, t0, 120, 3, "down", 0)
		last = b.checks(t, "shop", "home", "eu", iv, t0, 120, 3, "down", 0)
		b.run(t, last.Add(30*time.Second))
		if _, ok := b.open(t)["shop/home/down"]; !ok {
			t.Errorf("two of three locations down did not open a down alert: %v", keys(b.open(t)))
		}
	})
}

// A location that cannot probe (error, missed) is left out: with too few
// usable answers the slot is broken and spends no budget.
func TestBrokenSlotsAreExcluded(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		b := setup(t, url, shopYAML)
		iv := 30 * time.Second
		b.checks(t, "shop", "home", "local", iv, t0, 0, 100, "up", 10*time.Millisecond)
		b.checks(t, "shop", "home", "local", iv, t0, 100, 20, "error", 0)
		last := b.checks(t, "shop", "home", "local", iv, t0, 120, 10, "missed", 0)
		b.run(t, last.Add(time.Second))
		st, err := slowatch.Report(t.Context(), b.store, b.cfg, "shop", last.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		o := st.Objectives[0]
		if o.Counted != 100 || o.ExcludedBroken != 30 || o.SLI != 1 || len(b.open(t)) != 0 {
			t.Errorf("status = %+v, open %v", o, keys(b.open(t)))
		}
	})
}
