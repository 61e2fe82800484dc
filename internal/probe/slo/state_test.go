package slo

import (
	"testing"
	"time"
)

// An Alerter restored from States behaves like the one it was saved from:
// it does not open again what was opened, and it resolves it.
func TestAlerterStatesRestore(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	firing := Status{Firing: []Alert{{Severity: Page, Window: "1h/5m", BurnRate: 20, ShortBurnRate: 30, Threshold: 14.4}}}
	quiet := Status{}
	a, _ := NewAlerter(AlerterConfig{Confirmations: 2})
	a.Step(t0, []Observation{{Objective: "availability", Status: firing}})
	if evs := a.Step(t0.Add(time.Minute), []Observation{{Objective: "availability", Status: firing}}); len(evs) != 1 || evs[0].Kind != EventOpen {
		t.Fatalf("open = %+v", evs)
	}
	states := a.States()
	if len(states) != 1 || !states[0].Active || !states[0].Notified || states[0].Key != "slo/availability/page" || states[0].Last.BurnRate != 20 {
		t.Fatalf("states = %+v", states)
	}

	b, _ := NewAlerter(AlerterConfig{Confirmations: 2})
	b.Restore(states)
	if !b.Down("availability") {
		t.Fatal("restored alerter does not know the page is active")
	}
	if evs := b.Step(t0.Add(2*time.Minute), []Observation{{Objective: "availability", Status: firing}}); len(evs) != 0 {
		t.Fatalf("restored alerter sent %+v again", evs)
	}
	// One quiet step is not enough (2 confirmations); save in between.
	b.Step(t0.Add(3*time.Minute), []Observation{{Objective: "availability", Status: quiet}})
	c, _ := NewAlerter(AlerterConfig{Confirmations: 2})
	c.Restore(b.States())
	evs := c.Step(t0.Add(4*time.Minute), []Observation{{Objective: "availability", Status: quiet}})
	if len(evs) != 1 || evs[0].Kind != EventResolve || evs[0].Key != "slo/availability/page" || evs[0].Alert.BurnRate != 20 {
		t.Fatalf("resolve after restore = %+v", evs)
	}
	if len(c.States()) != 0 {
		t.Errorf("states after the resolve = %+v, want none", c.States())
	}
}

// AddCounts adds aggregated counts the way Add adds samples one by one.
func TestSeriesAddCounts(t *testing.T) {
	t.Parallel()
	obj := Objective{Name: "a", Kind: Availability, Target: 0.99, Window: 30 * 24 * time.Hour}
	now := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	one, _ := NewSeries(obj)
	many, _ := NewSeries(obj)
	hour := now.Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	for i := range 60 {
		at := hour.Add(time.Duration(i) * time.Minute)
		one.Add(Sample{At: at, Good: i%6 != 0})
		one.Add(Sample{At: at, Broken: true})
	}
	many.AddCounts(hour, 50, 10, 60)
	for _, s := range []*Series{one, many} {
		s.Add(Sample{At: now, Good: true})
		s.AddCounts(now, 0, 0, 0) // nothing
	}
	a, b := one.Evaluate(nil, now), many.Evaluate(nil, now)
	if a.Good != b.Good || a.Total != b.Total || a.Broken != b.Broken || a.Total != 61 || a.Broken != 60 {
		t.Fatalf("one by one %+v, at once %+v", a, b)
	}
	if many.AddCounts(now.Add(-60*24*time.Hour), 1, 0, 0) {
		t.Error("counts older than the hour ring were accepted")
	}
	if !(Objective{Kind: Latency, LatencyThreshold: time.Second}).Good(Sample{Good: true, Duration: time.Second}) ||
		(Objective{Kind: Availability}).Good(Sample{Good: true, Broken: true}) {
		t.Error("Objective.Good")
	}
}
