package slo

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// history is 35 days of a probe with two checks a minute (at :05 and :30),
// occasional outages, a broken probe for a while and silent minutes.
func history(end time.Time) []Sample {
	r := rand.New(rand.NewPCG(1, 2))
	var out []Sample
	start := end.Add(-35 * day).Truncate(time.Minute)
	down := 0
	for m := start; !m.After(end); m = m.Add(time.Minute) {
		if down == 0 && r.IntN(2000) == 0 {
			down = 1 + r.IntN(90)
		}
		for _, off := range []time.Duration{5 * time.Second, 30 * time.Second} {
			at := m.Add(off)
			if at.After(end) || r.IntN(50) == 0 {
				continue
			}
			s := Sample{At: at, Good: down == 0 && r.IntN(500) != 0, Duration: time.Duration(50+r.IntN(600)) * time.Millisecond}
			if m.Sub(start) > 20*day && m.Sub(start) < 20*day+3*time.Hour {
				s.Broken, s.Good = true, false
			}
			out = append(out, s)
		}
		if down > 0 {
			down--
		}
	}
	return out
}

// TestSeriesMatchesEvaluate feeds a Series and compares it with the exact
// Evaluate. When now falls in the last minute of an hour every window edge
// is on an hour boundary and the two agree exactly; otherwise windows up
// to MinuteResolutionLimit still agree exactly, and the 3-day and 30-day
// windows are off by at most half an hour of samples per rounded edge.
func TestSeriesMatchesEvaluate(t *testing.T) {
	t.Parallel()
	end := t0.Add(40 * day)
	all := history(end)
	// Hour-aligned maintenance keeps every edge on an hour; the second
	// set adds edges that are not.
	aligned := []Interval{
		{From: end.Add(-10 * day), To: end.Add(-10*day + 4*time.Hour)},
		{From: end.Add(-10*day + 3*time.Hour), To: end.Add(-10*day + 5*time.Hour)}, // overlaps the one above
		{From: end.Add(-50 * time.Hour), To: end.Add(-49 * time.Hour)},
	}
	unaligned := append(slices.Clone(aligned),
		Interval{From: end.Add(-60*time.Hour + 12*time.Minute), To: end.Add(-59*time.Hour + 17*time.Minute)},
		Interval{From: end.Add(-3*time.Hour - 7*time.Minute), To: end.Add(-2*time.Hour - 20*time.Minute)},
	)
	for _, kind := range []Kind{Availability, Latency} {
		obj := Objective{Name: "x", Kind: kind, Target: 0.999, Window: 30 * day}
		if kind == Latency {
			obj.Target, obj.LatencyThreshold = 0.9, 500*time.Millisecond
		}
		s, err := NewSeries(obj)
		if err != nil {
			t.Fatal(err)
		}
		next, exact, firing := 0, 0, 0
		// Checkpoints from 31 days before the end (the rings have wrapped
		// by then) up to the end, some in the last minute of an hour.
		for now := end.Add(-4*day - 21*time.Minute + 30*time.Second); !now.After(end); now = now.Add(7*time.Hour + 13*time.Minute) {
			for next < len(all) && !all[next].At.After(now) {
				if !s.Add(all[next]) {
					t.Fatalf("sample at %s dropped", all[next].At)
				}
				next++
			}
			// The last minute of the hour before: every edge on an hour.
			for _, probeNow := range []time.Time{now, now.Truncate(time.Hour).Add(-30 * time.Second)} {
				if probeNow.Minute() == 59 {
					want := Evaluate(obj, all[:next], aligned, probeNow)
					got := s.Evaluate(aligned, probeNow)
					firing += len(want.Firing)
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s at %s:\n got %+v\nwant %+v", kind, probeNow, got, want)
					}
					exact++
					continue
				}
				want := Evaluate(obj, all[:next], unaligned, probeNow)
				got := s.Evaluate(unaligned, probeNow)
				for _, w := range []string{"5m", "30m", "1h", "6h"} {
					if got.BurnRates[w] != want.BurnRates[w] {
						t.Errorf("%s at %s: burn %s = %v, want %v", kind, probeNow, w, got.BurnRates[w], want.BurnRates[w])
					}
				}
				// Three edges are rounded to the hour here: the window's far
				// edge and both ends of the maintenance 60 hours ago; each
				// is off by at most 30 minutes of 2 samples.
				if d := math.Abs(float64(got.Total - want.Total)); d > 3*30*2 {
					t.Errorf("%s at %s: total %d, exact %d", kind, probeNow, got.Total, want.Total)
				}
				if got.Muted != want.Muted {
					t.Errorf("%s at %s: muted %v, want %v", kind, probeNow, got.Muted, want.Muted)
				}
			}
		}
		if exact < 10 || firing == 0 {
			t.Errorf("%s: %d exact comparisons and %d firing windows; the test checks too little", kind, exact, firing)
		}
	}
}

func TestSeriesOrderAndAge(t *testing.T) {
	t.Parallel()
	obj := availability(0.999)
	obj.MinSamples = 1
	s, err := NewSeries(obj)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(40 * day)
	// Out of order within the minute ring and within the hour ring.
	for _, at := range []time.Time{now, now.Add(-2 * time.Minute), now.Add(-10 * day), now.Add(-time.Minute)} {
		if !s.Add(Sample{At: at, Good: false}) {
			t.Errorf("sample at -%s dropped", now.Sub(at))
		}
	}
	if s.Add(Sample{At: now.Add(-31 * day)}) {
		t.Errorf("sample older than the hour ring was kept")
	}
	st := s.Evaluate(nil, now)
	if st.Total != 4 || math.Abs(st.BurnRates["5m"]-1000) > 1e-6 {
		t.Errorf("total %d, 5m burn %v; want 4 and 1000", st.Total, st.BurnRates["5m"])
	}
	// After 40 silent days everything has left the window.
	later := now.Add(40 * day)
	s.Add(Sample{At: later, Good: true})
	if st := s.Evaluate(nil, later); st.Total != 1 || st.Good != 1 {
		t.Errorf("after a gap: good/total %d/%d, want 1/1", st.Good, st.Total)
	}
	// A now past the newest sample sees empty recent buckets, not stale ones.
	if st := s.Evaluate(nil, later.Add(7*time.Hour)); st.BurnRates["6h"] != 0 || st.Total != 1 {
		t.Errorf("past the head: 6h burn %v total %d", st.BurnRates["6h"], st.Total)
	}
}

func TestSeriesMemory(t *testing.T) {
	t.Parallel()
	s, err := NewSeries(availability(0.999))
	if err != nil {
		t.Fatal(err)
	}
	// 7 hours of minutes (6h window + 1h), 30 days + 2 of hours.
	if len(s.minutes) != 420 || len(s.hours) != 722 {
		t.Errorf("rings of %d minutes and %d hours, want 420 and 722", len(s.minutes), len(s.hours))
	}
	if b := (len(s.minutes) + len(s.hours)) * int(unsafe.Sizeof(bucket{})); b > 14<<10 {
		t.Errorf("series holds %d bytes of buckets, documented as about 14 KB", b)
	}
}

// BenchmarkSeriesEvaluate evaluates 1,000 objectives, each with 30 days of
// per-minute samples; one op is one round over all of them.
func BenchmarkSeriesEvaluate(b *testing.B) {
	now := t0.Add(30*day + 17*time.Minute + 30*time.Second)
	const n = 1000
	series := make([]*Series, n)
	for i := range series {
		obj := availability(0.999)
		s, err := NewSeries(obj)
		if err != nil {
			b.Fatal(err)
		}
		for m := 30*24*60 - 1; m >= 0; m-- {
			s.Add(Sample{At: now.Add(-time.Duration(m) * time.Minute), Good: (m+i)%997 != 0})
		}
		series[i] = s
	}
	maint := []Interval{{From: now.Add(-5 * day), To: now.Add(-5*day + 2*time.Hour)}}
	b.ResetTimer()
	for b.Loop() {
		for _, s := range series {
			s.Evaluate(maint, now)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/objective")
}

// BenchmarkEvaluateRaw is the exact Evaluate over one objective's 30 days
// of per-minute samples, for comparison with one Series evaluation.
func BenchmarkEvaluateRaw(b *testing.B) {
	now := t0.Add(30*day + 30*time.Second)
	samples := perMinute(now, 30*day, func(at time.Time) bool { return at.Minute() == 7 && at.Hour() == 3 })
	obj := availability(0.999)
	for b.Loop() {
		Evaluate(obj, samples, nil, now)
	}
}

func BenchmarkSeriesAdd(b *testing.B) {
	s, err := NewSeries(availability(0.999))
	if err != nil {
		b.Fatal(err)
	}
	at := t0
	for b.Loop() {
		at = at.Add(10 * time.Second)
		s.Add(Sample{At: at, Good: true})
	}
}
