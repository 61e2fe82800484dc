package slo

import (
	"cmp"
	"slices"
	"time"
)

// MinuteResolutionLimit is the longest burn window a Series evaluates at
// full minute resolution. Longer spans use hourly buckets at their far edge.
const MinuteResolutionLimit = 24 * time.Hour

const minutesPerHour = 60

type bucket struct {
	good, bad, broken uint32
}

func (b *bucket) add(c counts) {
	b.good += uint32(c.good)
	b.bad += uint32(c.bad)
	b.broken += uint32(c.broken)
}

func (c counts) plus(b bucket) counts {
	return counts{c.good + int64(b.good), c.bad + int64(b.bad), c.broken + int64(b.broken)}
}

func (c counts) minus(d counts) counts {
	return counts{max(c.good-d.good, 0), max(c.bad-d.bad, 0), max(c.broken-d.broken, 0)}
}

func (c counts) add(d counts) counts {
	return counts{c.good + d.good, c.bad + d.bad, c.broken + d.broken}
}

// Series keeps the samples of one objective as counts in two rings: one
// bucket per minute over the longest burn window up to
// MinuteResolutionLimit (plus an hour), and one bucket per hour over the
// objective window. Memory is fixed — about 14 KB for a 30-day objective
// with the default windows — and Evaluate costs O(hours in the window),
// independent of the sample rate.
//
// Precision: a window of length d covers the ceil(d/1m) most recent minute
// buckets, the current partial minute included, so its far edge is rounded
// to a minute. A maintenance interval excludes the buckets whose start lies
// inside it. Windows up to MinuteResolutionLimit are therefore exact to
// the minute. Any edge older than the minute ring — the far edge of the
// 3-day ticket window and of the 30-day budget, and the ends of old
// maintenance intervals — is rounded to the nearest hour: a partial hour
// counts whole when 30 minutes or more of it are inside, and not at all
// otherwise, so each such edge is off by at most 30 minutes of samples.
// When every edge falls on an hour, Series.Evaluate equals Evaluate.
// Series is not safe for concurrent use.
type Series struct {
	obj     Objective
	minutes []bucket // ring indexed by Unix minute mod len
	hours   []bucket // ring indexed by Unix hour mod len
	head    int64    // newest Unix minute added
	started bool
}

// NewSeries returns an empty Series for obj.
func NewSeries(obj Objective) (*Series, error) {
	if err := obj.Validate(); err != nil {
		return nil, err
	}
	var span time.Duration
	for _, w := range obj.windows() {
		for _, d := range []time.Duration{w.Short, w.Long} {
			if d <= MinuteResolutionLimit {
				span = max(span, d)
			}
		}
	}
	hoursOf := func(d time.Duration) int {
		return int((d + time.Hour - 1) / time.Hour)
	}
	return &Series{
		obj:     obj,
		minutes: make([]bucket, (hoursOf(span)+1)*minutesPerHour),
		hours:   make([]bucket, hoursOf(obj.longest())+2),
	}, nil
}

// Objective returns the objective the series was made for.
func (s *Series) Objective() Objective { return s.obj }

// Add counts sample. Samples may arrive out of order; Add reports false and
// drops a sample older than the hour ring. The newest sample moves the
// rings forward, so a sample stamped in the future discards as much history.
func (s *Series) Add(sample Sample) bool {
	var c counts
	switch {
	case sample.Broken:
		c.broken = 1
	case s.obj.good(sample):
		c.good = 1
	default:
		c.bad = 1
	}
	m := unixMinute(sample.At)
	s.advance(m)
	h := floorDiv(m, minutesPerHour)
	if !s.hourValid(h) {
		return false
	}
	s.hours[mod(h, len(s.hours))].add(c)
	if s.minuteValid(m) {
		s.minutes[mod(m, len(s.minutes))].add(c)
	}
	return true
}

func (s *Series) minuteValid(m int64) bool {
	return m <= s.head && m > s.head-int64(len(s.minutes))
}

func (s *Series) hourValid(h int64) bool {
	hh := floorDiv(s.head, minutesPerHour)
	return h <= hh && h > hh-int64(len(s.hours))
}

// advance moves head to minute m, clearing the buckets it reuses.
func (s *Series) advance(m int64) {
	if !s.started {
		s.started, s.head = true, m
		return
	}
	if m <= s.head {
		return
	}
	if m-s.head >= int64(len(s.minutes)) {
		clear(s.minutes)
	} else {
		for i := s.head + 1; i <= m; i++ {
			s.minutes[mod(i, len(s.minutes))] = bucket{}
		}
	}
	oh, nh := floorDiv(s.head, minutesPerHour), floorDiv(m, minutesPerHour)
	if nh-oh >= int64(len(s.hours)) {
		clear(s.hours)
	} else {
		for h := oh + 1; h <= nh; h++ {
			s.hours[mod(h, len(s.hours))] = bucket{}
		}
	}
	s.head = m
}

// sum counts the minutes [a, b].
func (s *Series) sum(a, b int64) counts {
	if !s.started {
		return counts{}
	}
	b = min(b, s.head)
	if a > b {
		return counts{}
	}
	ha, hb := floorDiv(a, minutesPerHour), floorDiv(b, minutesPerHour)
	if ha == hb {
		return s.partial(ha, a, b)
	}
	c := s.partial(ha, a, ha*minutesPerHour+minutesPerHour-1).add(s.partial(hb, hb*minutesPerHour, b))
	for h := ha + 1; h < hb; h++ {
		c = c.plus(s.hour(h))
	}
	return c
}

// partial counts minutes [a, b] within hour h.
func (s *Series) partial(h, a, b int64) counts {
	if a == h*minutesPerHour && b == a+minutesPerHour-1 {
		return counts{}.plus(s.hour(h))
	}
	if s.minuteValid(a) {
		var c counts
		for m := a; m <= b; m++ {
			c = c.plus(s.minutes[mod(m, len(s.minutes))])
		}
		return c
	}
	if b-a+1 >= minutesPerHour/2 {
		return counts{}.plus(s.hour(h))
	}
	return counts{}
}

func (s *Series) hour(h int64) bucket {
	if !s.hourValid(h) {
		return bucket{}
	}
	return s.hours[mod(h, len(s.hours))]
}

// Evaluate computes the status of the objective at now, excluding the
// buckets that start inside maint. See Series for its precision.
func (s *Series) Evaluate(maint []Interval, now time.Time) Status {
	type span struct{ lo, hi int64 }
	var excl []span
	for _, iv := range maint {
		if lo, hi := ceilMinute(iv.From), ceilMinute(iv.To)-1; lo <= hi {
			excl = append(excl, span{lo, hi})
		}
	}
	slices.SortFunc(excl, func(x, y span) int { return cmp.Compare(x.lo, y.lo) })
	merged := excl[:0]
	for _, e := range excl {
		if n := len(merged); n > 0 && e.lo <= merged[n-1].hi+1 {
			merged[n-1].hi = max(merged[n-1].hi, e.hi)
			continue
		}
		merged = append(merged, e)
	}
	nowMinute := unixMinute(now)
	count := func(d time.Duration) counts {
		n := int64((d + time.Minute - 1) / time.Minute)
		a, b := nowMinute-n+1, nowMinute
		c := s.sum(a, b)
		for _, e := range merged {
			if lo, hi := max(a, e.lo), min(b, e.hi); lo <= hi {
				c = c.minus(s.sum(lo, hi))
			}
		}
		return c
	}
	return buildStatus(s.obj, inAny(maint, now), count)
}

func unixMinute(t time.Time) int64 { return floorDiv(t.Unix(), 60) }

// ceilMinute is the first Unix minute starting at or after t.
func ceilMinute(t time.Time) int64 {
	m := unixMinute(t)
	if t.Unix()-m*60 != 0 || t.Nanosecond() != 0 {
		m++
	}
	return m
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func mod(a int64, n int) int {
	r := a % int64(n)
	if r < 0 {
		r += int64(n)
	}
	return int(r)
}

// AddCounts counts good, bad and broken samples at once, all stamped at, as
// Add would count them one by one; it is how aggregated history (minute
// and hour rollups) is loaded. The caller classifies the samples: for a
// latency objective, good means fast enough. It reports false and drops
// the counts when at is older than the hour ring.
func (s *Series) AddCounts(at time.Time, good, bad, broken int) bool {
	if good < 0 || bad < 0 || broken < 0 || good+bad+broken == 0 {
		return true
	}
	c := counts{good: int64(good), bad: int64(bad), broken: int64(broken)}
	m := unixMinute(at)
	s.advance(m)
	h := floorDiv(m, minutesPerHour)
	if !s.hourValid(h) {
		return false
	}
	s.hours[mod(h, len(s.hours))].add(c)
	if s.minuteValid(m) {
		s.minutes[mod(m, len(s.minutes))].add(c)
	}
	return true
}

// Good reports whether sample counts as good for the objective: a success,
// and for a latency objective, one no slower than the threshold.
func (o Objective) Good(sample Sample) bool { return !sample.Broken && o.good(sample) }
