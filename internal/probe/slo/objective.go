package slo

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kind is what an objective measures.
type Kind string

const (
	// Availability counts a sample good when the check succeeded.
	Availability Kind = "availability"
	// Latency counts a sample good when the check succeeded and its
	// Duration is at most the objective's LatencyThreshold. A failed check
	// has no meaningful latency and counts as bad.
	Latency Kind = "latency"
)

// Severity says who an alert is for.
type Severity string

const (
	// Page wakes someone up.
	Page Severity = "page"
	// Ticket is looked at in working hours.
	Ticket Severity = "ticket"
)

// DefaultMinSamples is used when Objective.MinSamples is zero.
const DefaultMinSamples = 10

// BurnWindow is one multi-window burn-rate alert: it fires when the burn
// rate over Long and the burn rate over Short are both at least BurnRate.
// A burn rate of 1 spends exactly the whole budget over the objective's
// window; BurnRate = fraction of budget × Window / Long.
type BurnWindow struct {
	Severity Severity
	Long     time.Duration
	Short    time.Duration
	BurnRate float64
}

// Name identifies the window, e.g. "1h/5m".
func (w BurnWindow) Name() string {
	return FormatDuration(w.Long) + "/" + FormatDuration(w.Short)
}

// DefaultWindows returns the multi-window, multi-burn-rate alerts from the
// Google SRE workbook for a 30-day objective: page when 2 % of the budget
// is spent in 1 h (burn rate 14.4, confirmed over 5 m) or 5 % in 6 h (burn
// rate 6, confirmed over 30 m); ticket when 10 % is spent in 3 d (burn rate
// 1, confirmed over 6 h).
func DefaultWindows() []BurnWindow {
	return []BurnWindow{
		{Severity: Page, Long: time.Hour, Short: 5 * time.Minute, BurnRate: 14.4},
		{Severity: Page, Long: 6 * time.Hour, Short: 30 * time.Minute, BurnRate: 6},
		{Severity: Ticket, Long: 72 * time.Hour, Short: 6 * time.Hour, BurnRate: 1},
	}
}

// Objective is a service level objective over a rolling window.
type Objective struct {
	Name string
	Kind Kind
	// Target is the fraction of good samples to reach, e.g. 0.999.
	Target float64
	// Window is the rolling window of the objective, e.g. 30 days.
	Window time.Duration
	// LatencyThreshold applies to Latency objectives only.
	LatencyThreshold time.Duration
	// Windows are the burn-rate alerts; nil means DefaultWindows, an empty
	// non-nil slice means none.
	Windows []BurnWindow
	// MinSamples is the fewest samples a window needs before it can fire,
	// so that one failure on a sparse probe does not page. Zero means
	// DefaultMinSamples; 1 turns the guard off.
	MinSamples int
}

// ErrInvalidObjective is wrapped by every error from Objective.Validate.
var ErrInvalidObjective = errors.New("invalid objective")

// Validate reports every problem with o at once.
func (o Objective) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w %q: %s", ErrInvalidObjective, o.Name, fmt.Sprintf(format, args...)))
	}
	if o.Name == "" {
		bad("missing name")
	}
	switch o.Kind {
	case Availability:
		if o.LatencyThreshold != 0 {
			bad("latency_threshold applies to latency objectives only")
		}
	case Latency:
		if o.LatencyThreshold <= 0 {
			bad("latency objective needs a positive latency_threshold")
		}
	default:
		bad("kind %q is neither %q nor %q", o.Kind, Availability, Latency)
	}
	if !(o.Target > 0 && o.Target < 1) {
		bad("target %v is not between 0 and 1 (exclusive)", o.Target)
	}
	if o.Window <= 0 {
		bad("window %s is not positive", o.Window)
	}
	if o.MinSamples < 0 {
		bad("min_samples %d is negative", o.MinSamples)
	}
	seen := map[string]bool{}
	for _, w := range o.Windows {
		name := w.Name()
		if w.Severity != Page && w.Severity != Ticket {
			bad("window %s: severity %q is neither %q nor %q", name, w.Severity, Page, Ticket)
		}
		if w.Short <= 0 || w.Long <= w.Short {
			bad("window %s: need 0 < short < long", name)
		}
		if w.Long > o.Window {
			bad("window %s: long window is longer than the objective window %s", name, FormatDuration(o.Window))
		}
		if !(w.BurnRate > 0) {
			bad("window %s: burn rate %v is not positive", name, w.BurnRate)
		}
		if seen[name] {
			bad("window %s appears twice", name)
		}
		seen[name] = true
	}
	return errors.Join(errs...)
}

// Budget is the fraction of samples allowed to be bad: 1 - Target.
func (o Objective) Budget() float64 { return 1 - o.Target }

// BudgetTime is the error budget expressed as full downtime over the
// window: a 30-day objective at 99.9 % has 43.2 minutes.
func (o Objective) BudgetTime() time.Duration {
	return time.Duration(float64(o.Window) * o.Budget())
}

func (o Objective) windows() []BurnWindow {
	if o.Windows == nil {
		return DefaultWindows()
	}
	return o.Windows
}

func (o Objective) minSamples() int {
	if o.MinSamples == 0 {
		return DefaultMinSamples
	}
	return o.MinSamples
}

// good reports whether s counts toward the SLI as a good sample.
func (o Objective) good(s Sample) bool {
	if o.Kind == Latency {
		return s.Good && s.Duration <= o.LatencyThreshold
	}
	return s.Good
}

// longest is the longest span Evaluate looks back over.
func (o Objective) longest() time.Duration {
	d := o.Window
	for _, w := range o.windows() {
		d = max(d, w.Long)
	}
	return d
}

// FormatDuration writes d in the largest whole unit of days, hours,
// minutes or seconds ("30d", "1h", "5m"), falling back to
// time.Duration.String.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	for _, u := range []struct {
		unit   time.Duration
		suffix string
	}{{day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d > 0 && d%u.unit == 0 {
			return strconv.FormatInt(int64(d/u.unit), 10) + u.suffix
		}
	}
	return d.String()
}
