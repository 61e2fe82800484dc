package slo

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// t0 is a minute boundary; samples sit at the middle of their minute.
var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func approx(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}

// perMinute returns one sample per minute, at hh:mm:30, over (end-d, end],
// with bad deciding which are failures.
func perMinute(end time.Time, d time.Duration, bad func(at time.Time) bool) []Sample {
	n := int(d / time.Minute)
	out := make([]Sample, 0, n)
	for i := n - 1; i >= 0; i-- {
		at := end.Add(-time.Duration(i) * time.Minute)
		out = append(out, Sample{At: at, Good: !bad(at), Duration: 100 * time.Millisecond})
	}
	return out
}

// spread returns n samples evenly over (from, to]; the first nBad (the
// newest) are failures.
func spread(from, to time.Time, n, nBad int) []Sample {
	step := to.Sub(from) / time.Duration(n)
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{At: to.Add(-time.Duration(i) * step), Good: i >= nBad}
	}
	return out
}

func availability(target float64) Objective {
	return Objective{Name: "shop/home", Kind: Availability, Target: target, Window: 30 * day}
}

func firingWindow(st Status, name string) (Alert, bool) {
	for _, a := range st.Firing {
		if a.Window == name {
			return a, true
		}
	}
	return Alert{}, false
}

func TestBudgetTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target float64
		window time.Duration
		want   time.Duration
	}{
		{0.999, 30 * day, 43*time.Minute + 12*time.Second},
		{0.99, 30 * day, 7*time.Hour + 12*time.Minute},
		{0.9999, 30 * day, 4*time.Minute + 19*time.Second + 200*time.Millisecond},
		{0.999, 7 * day, 10*time.Minute + 4*time.Second + 800*time.Millisecond},
	}
	for _, tt := range tests {
		o := Objective{Target: tt.target, Window: tt.window}
		// Float error is at most a few nanoseconds.
		if got := o.BudgetTime(); (got - tt.want).Abs() > time.Microsecond {
			t.Errorf("%v over %s: budget %s, want %s", tt.target, FormatDuration(tt.window), got, tt.want)
		}
	}
}

// TestOneHourOutage: 30 days of per-minute samples at 99.9 % (budget 43.2
// samples of 43,200), the last hour down.
func TestOneHourOutage(t *testing.T) {
	t.Parallel()
	now := t0.Add(30*day + 30*time.Second)
	samples := perMinute(now, 30*day, func(at time.Time) bool { return now.Sub(at) < time.Hour })

	for _, tt := range []struct {
		name       string
		minSamples int
		firing     []string
	}{
		// The 5m window holds 5 samples, under the default guard of 10.
		{"default guard", 0, []string{"6h/30m", "3d/6h"}},
		{"guard off", 1, []string{"1h/5m", "6h/30m", "3d/6h"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obj := availability(0.999)
			obj.MinSamples = tt.minSamples
			st := Evaluate(obj, samples, nil, now)
			if st.Total != 43200 || st.Good != 43140 {
				t.Fatalf("good/total = %d/%d, want 43140/43200", st.Good, st.Total)
			}
			approx(t, "SLI", st.SLI, 43140.0/43200)
			approx(t, "budget total", st.BudgetTotal, 0.001)
			// 60 bad minutes against a 43.2-minute budget: 1 - 60/43.2.
			approx(t, "budget remaining", st.BudgetRemaining, -0.3888888888888889)
			want := map[string]float64{
				"1h": 1000, "5m": 1000, "30m": 1000,
				"6h": 60.0 / 360 / 0.001,  // 166.67
				"3d": 60.0 / 4320 / 0.001, // 13.89
			}
			if len(st.BurnRates) != len(want) {
				t.Errorf("burn rates %v, want keys of %v", st.BurnRates, want)
			}
			for k, v := range want {
				approx(t, "burn rate "+k, st.BurnRates[k], v)
			}
			var got []string
			for _, a := range st.Firing {
				got = append(got, a.Window)
			}
			if strings.Join(got, " ") != strings.Join(tt.firing, " ") {
				t.Errorf("firing %v, want %v", got, tt.firing)
			}
			if a, ok := firingWindow(st, "6h/30m"); !ok || a.Severity != Page || a.Threshold != 6 {
				t.Errorf("6h/30m alert = %+v", a)
			} else {
				approx(t, "6h/30m burn", a.BurnRate, 166.66666666666666)
				approx(t, "6h/30m short burn", a.ShortBurnRate, 1000)
			}
			if a, _ := firingWindow(st, "3d/6h"); a.Severity != Ticket {
				t.Errorf("3d/6h severity %q, want ticket", a.Severity)
			}
		})
	}
}

// TestWindowBoundaries puts each default window exactly at its burn-rate
// threshold (fires) and one failure under it (does not), once with the
// long window deciding and once with the short one. Target 0.99 (budget
// 1 %), so burn rate b needs a bad fraction of b/100.
func TestWindowBoundaries(t *testing.T) {
	t.Parallel()
	now := t0.Add(10 * day)
	for _, w := range DefaultWindows() {
		need := int(math.Round(w.BurnRate * 10)) // bad per 1000 samples: 144, 60, 10
		for _, tt := range []struct {
			name  string
			delta int
			fires bool
		}{{"at threshold", 0, true}, {"one under", -1, false}} {
			t.Run(w.Name()+"/long decides/"+tt.name, func(t *testing.T) {
				t.Parallel()
				// 1000 samples in the long window: 200 in the short one
				// with half the failures (short burn well above), 800 older.
				shortBad := need / 2
				s := spread(now.Add(-w.Short), now, 200, shortBad)
				s = append(s, spread(now.Add(-w.Long), now.Add(-w.Short), 800, need-shortBad+tt.delta)...)
				obj := availability(0.99)
				obj.MinSamples = 1
				st := Evaluate(obj, s, nil, now)
				approx(t, "long burn", st.BurnRates[FormatDuration(w.Long)], float64(need+tt.delta)/1000/0.01)
				if _, ok := firingWindow(st, w.Name()); ok != tt.fires {
					t.Errorf("fires = %v, want %v (burn rates %v)", ok, tt.fires, st.BurnRates)
				}
			})
			t.Run(w.Name()+"/short decides/"+tt.name, func(t *testing.T) {
				t.Parallel()
				// 1000 samples in the short window at the threshold, 1000
				// older all failing (long burn about 50+).
				s := spread(now.Add(-w.Short), now, 1000, need+tt.delta)
				older := spread(now.Add(-w.Long), now.Add(-w.Short), 1000, 1000)
				s = append(s, older...)
				obj := availability(0.99)
				obj.MinSamples = 1
				st := Evaluate(obj, s, nil, now)
				approx(t, "short burn", st.BurnRates[FormatDuration(w.Short)], float64(need+tt.delta)/1000/0.01)
				if _, ok := firingWindow(st, w.Name()); ok != tt.fires {
					t.Errorf("fires = %v, want %v (burn rates %v)", ok, tt.fires, st.BurnRates)
				}
			})
		}
	}
}

// TestMinSampleGuard: a probe every 5 minutes at 99.9 %, 30 days good and
// one failure now.
func TestMinSampleGuard(t *testing.T) {
	t.Parallel()
	now := t0.Add(30 * day)
	var samples []Sample
	for at := now; now.Sub(at) < 30*day; at = at.Add(-5 * time.Minute) {
		samples = append(samples, Sample{At: at, Good: !at.Equal(now)})
	}
	pages := func(st Status) []string {
		var out []string
		for _, a := range st.Firing {
			if a.Severity == Page {
				out = append(out, a.Window)
			}
		}
		return out
	}

	obj := availability(0.999)
	st := Evaluate(obj, samples, nil, now)
	// 1h: 1 of 12 → 83.3; 5m: 1 of 1 → 1000, but 1 sample < 10.
	approx(t, "1h burn", st.BurnRates["1h"], 1.0/12/0.001)
	approx(t, "5m burn", st.BurnRates["5m"], 1000)
	if p := pages(st); len(p) != 0 {
		t.Errorf("one failure on a sparse probe pages: %v", p)
	}
	// 1 failure in 864 samples over 3 days is 116 % of the 3-day share of
	// the budget, and the 6h window has 72 samples: that is a ticket.
	if a, ok := firingWindow(st, "3d/6h"); !ok {
		t.Errorf("3d/6h does not fire, burn rates %v", st.BurnRates)
	} else {
		approx(t, "3d burn", a.BurnRate, 1.0/864/0.001)
	}

	// Without the guard the one failure pages twice: 1h/5m as above, and
	// 6h/30m with 1 of 72 (13.9) and 1 of 6 (166.7).
	obj.MinSamples = 1
	if p := strings.Join(pages(Evaluate(obj, samples, nil, now)), " "); p != "1h/5m 6h/30m" {
		t.Errorf("without the guard pages = %v, want [1h/5m 6h/30m]", p)
	}
}

func TestBrokenExcluded(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	samples := perMinute(now, time.Hour, func(time.Time) bool { return false })
	// The probe breaks for the last 30 minutes: those results say nothing
	// about the target.
	for i := 30; i < 60; i++ {
		samples[i].Good, samples[i].Broken = false, true
	}
	obj := availability(0.999)
	obj.MinSamples = 1
	st := Evaluate(obj, samples, nil, now)
	if st.Total != 30 || st.Good != 30 || st.Broken != 30 {
		t.Errorf("good/total/broken = %d/%d/%d, want 30/30/30", st.Good, st.Total, st.Broken)
	}
	approx(t, "SLI", st.SLI, 1)
	approx(t, "budget remaining", st.BudgetRemaining, 1)
	approx(t, "5m burn", st.BurnRates["5m"], 0) // no samples counted
	if len(st.Firing) != 0 {
		t.Errorf("firing %v", st.Firing)
	}
}

func TestMaintenance(t *testing.T) {
	t.Parallel()
	now := t0.Add(10*day + 30*time.Second)
	// Down from 2h ago to 1h ago, inside maintenance [2h ago, 1h ago).
	down := func(at time.Time) bool { age := now.Sub(at); return age > time.Hour && age <= 2*time.Hour }
	samples := perMinute(now, 10*day, down)
	maint := []Interval{{From: now.Add(-2 * time.Hour), To: now.Add(-time.Hour)}}
	obj := availability(0.999)
	obj.MinSamples = 1

	without := Evaluate(obj, samples, nil, now)
	approx(t, "burn 6h without maintenance", without.BurnRates["6h"], 60.0/360/0.001)
	if len(without.Firing) == 0 || without.Muted {
		t.Fatalf("outage outside maintenance: firing %v muted %v", without.Firing, without.Muted)
	}

	st := Evaluate(obj, samples, maint, now)
	if st.Total != 14400-60 || st.Good != st.Total {
		t.Errorf("good/total = %d/%d, want %d/%d", st.Good, st.Total, 14340, 14340)
	}
	approx(t, "budget remaining", st.BudgetRemaining, 1)
	approx(t, "6h burn", st.BurnRates["6h"], 0)
	if len(st.Firing) != 0 || st.Muted {
		t.Errorf("firing %v muted %v, want none and unmuted", st.Firing, st.Muted)
	}

	// Now inside a maintenance window: still evaluated, but muted.
	during := Evaluate(obj, samples, []Interval{{From: now.Add(-time.Minute), To: now.Add(time.Hour)}}, now.Add(-90*time.Minute))
	if during.Muted {
		t.Errorf("muted outside its interval")
	}
	during = Evaluate(obj, samples, []Interval{{From: now.Add(-3 * time.Hour), To: now.Add(time.Hour)}}, now)
	if !during.Muted {
		t.Errorf("not muted inside maintenance")
	}
}

func TestLatencySLI(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	var samples []Sample
	add := func(n int, good bool, d time.Duration) {
		for range n {
			samples = append(samples, Sample{At: now.Add(-time.Duration(len(samples)) * time.Second), Good: good, Duration: d})
		}
	}
	add(90, true, 120*time.Millisecond)
	add(5, true, 500*time.Millisecond) // at the threshold: good
	add(3, true, 501*time.Millisecond)
	add(2, false, 50*time.Millisecond) // failed: bad whatever its duration
	lat := Objective{Name: "api/p95", Kind: Latency, Target: 0.95, Window: 30 * day, LatencyThreshold: 500 * time.Millisecond}
	st := Evaluate(lat, samples, nil, now)
	approx(t, "latency SLI", st.SLI, 0.95)
	approx(t, "latency budget remaining", st.BudgetRemaining, 0) // 5 bad of a 5 % budget
	av := Evaluate(availability(0.95), samples, nil, now)
	approx(t, "availability SLI", av.SLI, 0.98)
	approx(t, "availability budget remaining", av.BudgetRemaining, 1-0.02/0.05)
}

func TestNoSamples(t *testing.T) {
	t.Parallel()
	st := Evaluate(availability(0.999), nil, nil, t0)
	if st.SLI != 1 || st.Total != 0 || st.BudgetRemaining != 1 || len(st.Firing) != 0 {
		t.Errorf("empty status = %+v", st)
	}
	// Samples after now are not counted.
	st = Evaluate(availability(0.999), []Sample{{At: t0.Add(time.Second)}}, nil, t0)
	if st.Total != 0 {
		t.Errorf("future sample counted")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := availability(0.999)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid objective: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*Objective)
		want   []string
	}{
		{"target 1", func(o *Objective) { o.Target = 1 }, []string{"target 1 is not between 0 and 1"}},
		{"no kind", func(o *Objective) { o.Kind = "" }, []string{`kind "" is neither`}},
		{"latency no threshold", func(o *Objective) { o.Kind = Latency }, []string{"needs a positive latency_threshold"}},
		{"threshold on availability", func(o *Objective) { o.LatencyThreshold = time.Second }, []string{"applies to latency objectives only"}},
		{"windows", func(o *Objective) {
			o.Windows = []BurnWindow{
				{Severity: "sms", Long: time.Hour, Short: 2 * time.Hour, BurnRate: 0},
				{Severity: Page, Long: 40 * day, Short: time.Hour, BurnRate: 1},
				{Severity: Page, Long: 40 * day, Short: time.Hour, BurnRate: 2},
			}
		}, []string{`window 1h/2h: severity "sms"`, "window 1h/2h: need 0 < short < long", "window 1h/2h: burn rate 0",
			"window 40d/1h: long window is longer than the objective window 30d", "window 40d/1h appears twice"}},
		{"all at once", func(o *Objective) { o.Name, o.Window, o.MinSamples = "", 0, -1 }, []string{"missing name", "window 0s is not positive", "min_samples -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := good
			tt.modify(&o)
			err := o.Validate()
			if !errors.Is(err, ErrInvalidObjective) {
				t.Fatalf("err = %v, want ErrInvalidObjective", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, err := NewSeries(o); err == nil {
				t.Errorf("NewSeries accepted an invalid objective")
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		30 * day: "30d", 72 * time.Hour: "3d", time.Hour: "1h", 90 * time.Minute: "90m",
		5 * time.Minute: "5m", 45 * time.Second: "45s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
	if got := DefaultWindows()[2].Name(); got != "3d/6h" {
		t.Errorf("ticket window name %q", got)
	}
}
