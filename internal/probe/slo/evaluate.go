package slo

import (
	"time"
)

// Sample is one probe result as the SLO sees it.
type Sample struct {
	At   time.Time
	Good bool
	// Broken marks a result where the probe itself failed (bad config,
	// agent fault), not the target: it is excluded from the budget.
	Broken   bool
	Duration time.Duration
}

// Interval is a maintenance window, [From, To).
type Interval struct {
	From, To time.Time
}

// Contains reports whether t is in [From, To).
func (iv Interval) Contains(t time.Time) bool {
	return !t.Before(iv.From) && t.Before(iv.To)
}

// Alert is one burn-rate window that fires.
type Alert struct {
	Severity Severity
	// Window is the BurnWindow name, e.g. "1h/5m".
	Window string
	// BurnRate is the burn rate over the long window; ShortBurnRate over
	// the short one. Both are at least Threshold.
	BurnRate      float64
	ShortBurnRate float64
	Threshold     float64
}

// Status is the state of an objective at one instant.
type Status struct {
	// SLI is Good/Total over the objective window; 1 when Total is 0.
	SLI float64
	// Good and Total count samples over the objective window, without
	// broken samples and samples inside maintenance. Broken counts the
	// broken samples left out.
	Good, Total, Broken int
	// BudgetTotal is the fraction of samples allowed to be bad (1 - Target).
	BudgetTotal float64
	// BudgetRemaining is the fraction of the budget left: 1 untouched,
	// 0 spent, negative overspent.
	BudgetRemaining float64
	// BurnRates is keyed by window length ("1h", "5m", "3d"): the bad
	// fraction over that window divided by BudgetTotal; 0 without samples.
	BurnRates map[string]float64
	// Firing lists the burn windows that fire, in the objective's order.
	Firing []Alert
	// Muted is true when now is inside a maintenance window. Firing is
	// still reported; Alerter opens nothing while muted.
	Muted bool
}

// burnEpsilon absorbs floating-point error so a burn rate exactly at its
// threshold fires: 1-0.999 is 0.0010000000000000009, not 0.001.
const burnEpsilon = 1e-9

type counts struct {
	good, bad, broken int64
}

func (c counts) total() int64 { return c.good + c.bad }

// Evaluate computes the status of obj at now from raw samples, excluding
// samples inside maint. Each window d covers samples with At in
// (now-d, now]; samples after now are ignored. It is exact and O(samples ×
// windows); use Series for many probes. obj must pass Validate.
func Evaluate(obj Objective, samples []Sample, maint []Interval, now time.Time) Status {
	count := func(d time.Duration) counts {
		var c counts
		from := now.Add(-d)
		for _, s := range samples {
			if !s.At.After(from) || s.At.After(now) || inAny(maint, s.At) {
				continue
			}
			switch {
			case s.Broken:
				c.broken++
			case obj.good(s):
				c.good++
			default:
				c.bad++
			}
		}
		return c
	}
	return buildStatus(obj, inAny(maint, now), count)
}

func inAny(ivs []Interval, t time.Time) bool {
	for _, iv := range ivs {
		if iv.Contains(t) {
			return true
		}
	}
	return false
}

// buildStatus turns window counts into a Status; count is called once per
// distinct window length.
func buildStatus(obj Objective, muted bool, count func(time.Duration) counts) Status {
	cache := map[time.Duration]counts{}
	get := func(d time.Duration) counts {
		c, ok := cache[d]
		if !ok {
			c = count(d)
			cache[d] = c
		}
		return c
	}
	budget := obj.Budget()
	burn := func(c counts) float64 {
		if c.total() == 0 {
			return 0
		}
		return float64(c.bad) / float64(c.total()) / budget
	}

	all := get(obj.Window)
	st := Status{
		SLI:             1,
		Good:            int(all.good),
		Total:           int(all.total()),
		Broken:          int(all.broken),
		BudgetTotal:     budget,
		BudgetRemaining: 1 - burn(all),
		BurnRates:       map[string]float64{},
		Muted:           muted,
	}
	if all.total() > 0 {
		st.SLI = float64(all.good) / float64(all.total())
	}
	minSamples := int64(obj.minSamples())
	for _, w := range obj.windows() {
		long, short := get(w.Long), get(w.Short)
		bl, bs := burn(long), burn(short)
		st.BurnRates[FormatDuration(w.Long)] = bl
		st.BurnRates[FormatDuration(w.Short)] = bs
		limit := w.BurnRate * (1 - burnEpsilon)
		if bl >= limit && bs >= limit && long.total() >= minSamples && short.total() >= minSamples {
			st.Firing = append(st.Firing, Alert{
				Severity:      w.Severity,
				Window:        w.Name(),
				BurnRate:      bl,
				ShortBurnRate: bs,
				Threshold:     w.BurnRate,
			})
		}
	}
	return st
}
