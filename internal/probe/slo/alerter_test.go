package slo

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	page1h = Alert{Severity: Page, Window: "1h/5m", BurnRate: 20, ShortBurnRate: 30, Threshold: 14.4}
	page6h = Alert{Severity: Page, Window: "6h/30m", BurnRate: 8, ShortBurnRate: 9, Threshold: 6}
	ticket = Alert{Severity: Ticket, Window: "3d/6h", BurnRate: 1.5, ShortBurnRate: 2, Threshold: 1}
)

func firing(alerts ...Alert) Status { return Status{Firing: alerts} }

func muted(alerts ...Alert) Status { return Status{Firing: alerts, Muted: true} }

func newAlerter(t *testing.T, cfg AlerterConfig) *Alerter {
	t.Helper()
	a, err := NewAlerter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// render writes events as "open slo/app/page" joined by ", ".
func render(events []Event) string {
	var out []string
	for _, e := range events {
		out = append(out, string(e.Kind)+" "+e.Key)
	}
	return strings.Join(out, ", ")
}

// step is one evaluation round and the events it must produce.
type step struct {
	obs  map[string]Status
	want string
}

func run(t *testing.T, a *Alerter, steps []step) {
	t.Helper()
	now := t0
	for i, s := range steps {
		var obs []Observation
		for name, st := range s.obs {
			obs = append(obs, Observation{Objective: name, Status: st})
		}
		now = now.Add(time.Minute)
		if got := render(a.Step(now, obs)); got != s.want {
			t.Errorf("step %d: events %q, want %q", i+1, got, s.want)
		}
	}
}

func TestAlerterConfirmation(t *testing.T) {
	t.Parallel()
	on := map[string]Status{"app": firing(page1h)}
	off := map[string]Status{"app": {}}
	tests := []struct {
		name    string
		confirm int
		steps   []step
	}{
		{"default needs two", 0, []step{
			{on, ""}, {on, "open slo/app/page"}, {on, ""}, {off, ""}, {off, "resolve slo/app/page"}, {off, ""},
		}},
		{"flapping never opens", 0, []step{
			{on, ""}, {off, ""}, {on, ""}, {off, ""}, {on, ""}, {off, ""},
		}},
		{"flapping never resolves", 0, []step{
			{on, ""}, {on, "open slo/app/page"}, {off, ""}, {on, ""}, {off, ""}, {on, ""},
		}},
		{"three", 3, []step{
			{on, ""}, {on, ""}, {off, ""}, {on, ""}, {on, ""}, {on, "open slo/app/page"},
			{off, ""}, {off, ""}, {off, "resolve slo/app/page"},
		}},
		{"one", 1, []step{{on, "open slo/app/page"}, {off, "resolve slo/app/page"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run(t, newAlerter(t, AlerterConfig{Confirmations: tt.confirm}), tt.steps)
		})
	}
}

func TestAlerterSeverities(t *testing.T) {
	t.Parallel()
	a := newAlerter(t, AlerterConfig{Confirmations: 1})
	// Two page windows make one page alert, carrying the strongest.
	ev := a.Step(t0, []Observation{{"app", firing(page6h, page1h, ticket)}})
	if got := render(ev); got != "open slo/app/page, open slo/app/ticket" {
		t.Fatalf("events %q", got)
	}
	if ev[0].Alert != page1h || ev[0].Objective != "app" || ev[0].Severity != Page || !ev[0].At.Equal(t0) {
		t.Errorf("page event %+v", ev[0])
	}
	// The page clears, the ticket stays.
	if got := render(a.Step(t0, []Observation{{"app", firing(ticket)}})); got != "resolve slo/app/page" {
		t.Errorf("events %q", got)
	}
}

func TestAlerterDependsOn(t *testing.T) {
	t.Parallel()
	cfg := AlerterConfig{DependsOn: map[string][]string{"app": {"db"}, "web": {"app"}}}
	t.Run("dependency down suppresses opens", func(t *testing.T) {
		t.Parallel()
		both := map[string]Status{"db": firing(page1h), "app": firing(page1h, ticket), "web": firing(page1h)}
		dbOnly := map[string]Status{"db": firing(page1h), "app": firing(page1h), "web": firing(page1h)}
		recovered := map[string]Status{"db": {}, "app": firing(page1h), "web": firing(page1h)}
		run(t, newAlerter(t, cfg), []step{
			{both, ""},
			// db and app confirm in the same step: only db opens, and
			// web is suppressed through app (transitively too).
			{both, "open slo/db/page"},
			{dbOnly, ""},
			{recovered, ""},
			// db resolves and app, still firing, opens now; web stays
			// suppressed because app is down.
			{recovered, "open slo/app/page, resolve slo/db/page"},
			{map[string]Status{"db": {}, "app": {}, "web": firing(page1h)}, ""},
			{map[string]Status{"db": {}, "app": {}, "web": firing(page1h)}, "resolve slo/app/page, open slo/web/page"},
		})
	})
	t.Run("resolve is sent while the dependency is down", func(t *testing.T) {
		t.Parallel()
		run(t, newAlerter(t, cfg), []step{
			{map[string]Status{"app": firing(page1h), "db": {}}, ""},
			{map[string]Status{"app": firing(page1h), "db": {}}, "open slo/app/page"},
			{map[string]Status{"app": {}, "db": firing(page1h)}, ""},
			{map[string]Status{"app": {}, "db": firing(page1h)}, "resolve slo/app/page, open slo/db/page"},
		})
	})
	t.Run("a ticket on the dependency is not down", func(t *testing.T) {
		t.Parallel()
		run(t, newAlerter(t, cfg), []step{
			{map[string]Status{"app": firing(page1h), "db": firing(ticket)}, ""},
			{map[string]Status{"app": firing(page1h), "db": firing(ticket)}, "open slo/app/page, open slo/db/ticket"},
		})
	})
	t.Run("cycle", func(t *testing.T) {
		t.Parallel()
		a := newAlerter(t, AlerterConfig{Confirmations: 1, DependsOn: map[string][]string{"a": {"b"}, "b": {"a"}}})
		run(t, a, []step{{map[string]Status{"a": firing(page1h)}, "open slo/a/page"}})
	})
}

func TestAlerterMaintenance(t *testing.T) {
	t.Parallel()
	run(t, newAlerter(t, AlerterConfig{}), []step{
		{map[string]Status{"app": muted(page1h)}, ""},
		{map[string]Status{"app": muted(page1h)}, ""},
		{map[string]Status{"app": muted(page1h)}, ""},
		// Maintenance over and still burning: it opens at once, the
		// condition having been confirmed already.
		{map[string]Status{"app": firing(page1h)}, "open slo/app/page"},
		// An open alert still resolves during maintenance.
		{map[string]Status{"app": muted()}, ""},
		{map[string]Status{"app": muted()}, "resolve slo/app/page"},
	})
	// A condition that starts and ends inside maintenance is never heard of.
	run(t, newAlerter(t, AlerterConfig{}), []step{
		{map[string]Status{"app": muted(page1h)}, ""},
		{map[string]Status{"app": muted(page1h)}, ""},
		{map[string]Status{"app": muted()}, ""},
		{map[string]Status{"app": muted()}, ""},
		{map[string]Status{"app": {}}, ""},
	})
}

// TestAlerterFromEvaluate drives the Alerter with real Evaluate results:
// a 1-hour outage at 99.9 % on a probe every 30 s, evaluated every minute.
func TestAlerterFromEvaluate(t *testing.T) {
	t.Parallel()
	obj := availability(0.999)
	start := t0.Add(30 * day)
	outageFrom, outageTo := start.Add(time.Hour), start.Add(2*time.Hour)
	end := start.Add(8*time.Hour + 30*time.Minute)
	var samples []Sample // every 30 s, at :05 and :35
	for at := t0.Add(5 * time.Second); at.Before(end); at = at.Add(30 * time.Second) {
		samples = append(samples, Sample{At: at, Good: at.Before(outageFrom) || !at.Before(outageTo)})
	}
	a := newAlerter(t, AlerterConfig{})
	var log []string
	for now := start; now.Before(end); now = now.Add(time.Minute) {
		st := Evaluate(obj, samples, nil, now)
		for _, e := range a.Step(now, []Observation{{Objective: obj.Name, Status: st}}) {
			log = append(log, fmt.Sprintf("%s %s +%s", e.Kind, e.Key, e.At.Sub(outageFrom)))
		}
	}
	// Times from the start of the outage. Page: 1h/5m needs 14.4 × 0.1 %
	// of 120 samples = 1.7 bad, reached at +1m (2 bad), confirmed at +2m.
	// Ticket: 3d/6h needs 1 × 0.1 % of 8,640 = 8.6 bad, reached at +5m (10
	// bad), confirmed at +6m. The page resolves when no window fires: the
	// 5m window clears at +65m, the 30m one once the last bad sample
	// (+59m35s) leaves it at +90m, confirmed at +91m. The ticket's 6h
	// window fires on any bad sample (0.72 needed), so it clears at +7h,
	// confirmed at +7h1m.
	want := []string{
		"open slo/shop/home/page +2m0s",
		"open slo/shop/home/ticket +6m0s",
		"resolve slo/shop/home/page +1h31m0s",
		"resolve slo/shop/home/ticket +7h1m0s",
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}
