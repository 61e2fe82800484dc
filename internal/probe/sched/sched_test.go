package sched

import (
	"container/heap"
	"context"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOffsetsSpreadAndDeterministic(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Second
	const n, buckets = 10000, 50
	counts := make([]int, buckets)
	for _, k := range keys(n) {
		off := Offset(k, interval)
		if off != Offset(k, interval) {
			t.Fatalf("%s: offset not deterministic", k)
		}
		if off < 0 || off >= interval {
			t.Fatalf("%s: offset %s outside [0, %s)", k, off, interval)
		}
		counts[int(off*buckets/interval)]++
	}
	// Uniform: each bucket within 25 % of n/buckets (= 200; 4.4 sigma).
	for i, c := range counts {
		if math.Abs(float64(c)-n/buckets) > 0.25*n/buckets {
			t.Errorf("bucket %d of %d holds %d offsets, want about %d", i, buckets, c, n/buckets)
		}
	}
	// The grid does not depend on when the job was (re)scheduled.
	now := time.Now()
	for _, k := range keys(100) {
		a := firstRun(now, k, interval)
		b := firstRun(now.Add(3*interval+123*time.Millisecond), k, interval)
		if d := b.Sub(a); d%interval != 0 || a.Before(now) || a.Sub(now) >= interval {
			t.Fatalf("%s: first runs %s and %s not on one grid", k, a, b)
		}
		if got := time.Duration(a.UnixNano()) % interval; got != Offset(k, interval) {
			t.Fatalf("%s: first run at phase %s, want offset %s", k, got, Offset(k, interval))
		}
	}
}

func TestCadenceWithoutDrift(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	// The job takes 20 ms: a scheduler that counted from completion would
	// drift by 20 ms per run.
	b := setup(t, Options{}, job("a", interval, 20*time.Millisecond), job("b", interval, 0))
	time.Sleep(40 * interval)
	b.stop(t)
	for _, key := range []string{"a", "b"} {
		rs := b.sink.byKey()[key]
		if len(rs) < 35 {
			t.Fatalf("%s: %d runs in %s, want about 40", key, len(rs), 40*interval)
		}
		checkContiguous(t, key, rs, interval)
		// A 50 ms cadence under the race detector on a loaded two-core
		// machine may miss a slot now and then (recorded, never skipped);
		// more than one in ten is a scheduler that cannot keep up.
		var lags []time.Duration
		missed := 0
		for _, r := range rs {
			switch r.Status {
			case StatusUp:
				if got := r.Started.Sub(r.Scheduled); got != r.Lag {
					t.Errorf("%s: lag %s, but started %s after scheduled", key, r.Lag, got)
				}
			case StatusMissed:
				missed++
				t.Logf("%s at %s: missed: %s", key, r.Scheduled, r.Error)
			default:
				t.Errorf("%s at %s: %s %s", key, r.Scheduled, r.Status, r.Error)
			}
			lags = append(lags, r.Lag)
		}
		if missed > len(rs)/10 {
			t.Errorf("%s: %d of %d runs missed, want at most one in ten", key, missed, len(rs))
		}
		// The last run starts as close to its slot as the first: no drift.
		slices.Sort(lags)
		// Drift would add job a's 20 ms run time to every later start
		// (about 800 ms by the end); the bounds leave room for a loaded
		// CI machine running the race detector.
		if p90 := lags[len(lags)*9/10]; p90 > 40*time.Millisecond {
			t.Errorf("%s: p90 lag %s, want < 40ms", key, p90)
		}
		if last := rs[len(rs)-1].Lag; last > 45*time.Millisecond {
			t.Errorf("%s: last run %s late, want < 45ms", key, last)
		}
	}
}

func TestBusyPoolRecordsMisses(t *testing.T) {
	t.Parallel()
	const fast, slow = 60 * time.Millisecond, 600 * time.Millisecond
	jobs := []Job{job("slow", slow, 300*time.Millisecond)}
	for _, k := range []string{"f1", "f2", "f3"} {
		jobs = append(jobs, job(k, fast, 0))
	}
	b := setup(t, Options{Pools: map[string]int{ClassCheap: 1}}, jobs...)
	time.Sleep(1300 * time.Millisecond)
	b.stop(t)

	missed := 0
	for key, rs := range b.sink.byKey() {
		iv := fast
		if key == "slow" {
			iv = slow
		}
		checkContiguous(t, key, rs, iv) // every occurrence is a run or a miss
		for _, r := range rs {
			switch r.Status {
			case StatusMissed:
				missed++
				if !r.Started.IsZero() {
					t.Errorf("%s: missed record with a start time", key)
				}
				if r.Error != "scheduler stopped before the run could start" && r.Lag <= iv/2 {
					t.Errorf("%s: missed with lag %s, within the tolerance %s", key, r.Lag, iv/2)
				}
				if !strings.Contains(r.Error, "workers busy") && !strings.Contains(r.Error, "stopped") {
					t.Errorf("%s: missed for %q", key, r.Error)
				}
			case StatusUp:
				if r.Lag > iv/2 {
					t.Errorf("%s: ran %s late, beyond the tolerance %s", key, r.Lag, iv/2)
				}
			default:
				t.Errorf("%s: status %s %s", key, r.Status, r.Error)
			}
		}
	}
	// Two slow runs of 300 ms each block ~5 fast slots of each fast job.
	if missed < 6 {
		t.Errorf("%d missed records, want at least 6", missed)
	}
	if got := testutil.ToFloat64(b.s.m.missed.WithLabelValues(ClassCheap)); int(got) != missed {
		t.Errorf("steward_probe_missed_runs_total = %g, want %d", got, missed)
	}
}

func TestUpdateKeepsUnchangedSchedule(t *testing.T) {
	t.Parallel()
	const iv = 100 * time.Millisecond
	var v2runs atomic.Int32
	keep := job("keep", iv, 0)
	slowKeep := job("keep-slow", 20*time.Second, 0)
	changed := job("changed", iv, 0)
	retimed := job("retimed", iv, 0)
	removed := job("removed", iv, 0)
	b := setup(t, Options{}, keep, slowKeep, changed, retimed, removed)
	time.Sleep(350 * time.Millisecond)

	// Take the snapshot well away from keep-slow's run.
	next, _ := b.s.NextRun("keep-slow")
	for time.Until(next) < 200*time.Millisecond {
		time.Sleep(250 * time.Millisecond)
		next, _ = b.s.NextRun("keep-slow")
	}
	changed.Hash = "v2"
	changed.Run = func(context.Context) Outcome { v2runs.Add(1); return Outcome{Status: StatusDown, Error: "v2"} }
	retimed.Interval, retimed.Timeout = 2*iv, 2*iv
	added := job("added", iv, 0)
	updatedAt := time.Now()
	ch, err := b.s.Update([]Job{keep, slowKeep, changed, retimed, added})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := b.s.NextRun("keep-slow"); !after.Equal(next) {
		t.Errorf("keep-slow: next run moved from %s to %s", next, after)
	}
	want := Changes{Added: []string{"added"}, Changed: []string{"changed", "retimed"}, Removed: []string{"removed"}, Unchanged: 2}
	slices.Sort(ch.Changed)
	if !slices.Equal(ch.Added, want.Added) || !slices.Equal(ch.Changed, want.Changed) || !slices.Equal(ch.Removed, want.Removed) || ch.Unchanged != want.Unchanged {
		t.Errorf("changes %+v, want %+v", ch, want)
	}
	time.Sleep(500 * time.Millisecond)
	b.stop(t)

	got := b.sink.byKey()
	checkContiguous(t, "keep", got["keep"], iv) // no gap, no extra run at the update
	if len(got["keep"]) < 7 {
		t.Errorf("keep: %d runs, want about 8", len(got["keep"]))
	}
	for _, r := range got["removed"] {
		if r.Scheduled.After(updatedAt) {
			t.Errorf("removed: ran at %s, after the update at %s", r.Scheduled, updatedAt)
		}
	}
	if len(got["added"]) < 3 {
		t.Errorf("added: %d runs, want about 5", len(got["added"]))
	}
	if v2runs.Load() < 3 {
		t.Errorf("changed: new definition ran %d times, want about 5", v2runs.Load())
	}
	for _, r := range got["changed"] {
		if r.Scheduled.After(updatedAt.Add(iv)) && r.Error != "v2" {
			t.Errorf("changed: old definition ran at %s, after the update", r.Scheduled)
		}
	}
	off := Offset("retimed", 2*iv)
	for _, r := range got["retimed"] {
		if r.Scheduled.After(updatedAt) && time.Duration(r.Scheduled.UnixNano())%(2*iv) != off {
			t.Errorf("retimed: ran at %s, off its new %s grid", r.Scheduled, 2*iv)
		}
	}
}

func TestUpdateRejectsInvalidJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, job("a", time.Second, 0))
	bad := job("b", time.Second, 0)
	bad.Timeout = 2 * time.Second
	bad.Class = "gpu"
	_, err := b.s.Update([]Job{job("a", time.Second, 0), bad, job("a", time.Second, 0), {Key: "c"}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`job "b": timeout 2s`, `class "gpu"`, `job "a": duplicate key`, `job "c": interval 0s`, "no Run function"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, ok := b.s.NextRun("a"); !ok {
		t.Error("a rejected update removed job a")
	}
}

func TestStopDrainsAndFlushes(t *testing.T) {
	t.Parallel()
	const iv = 200 * time.Millisecond
	started := make(chan struct{}, 1)
	j := job("long", iv, 0)
	j.Run = func(ctx context.Context) Outcome {
		select {
		case started <- struct{}{}:
		default:
		}
		time.Sleep(120 * time.Millisecond) // well within the timeout
		return Outcome{Status: StatusUp, Error: "finished"}
	}
	// Batches would only be written after an hour: Stop has to flush.
	b := setup(t, Options{FlushInterval: time.Hour}, j)
	<-started
	t0 := time.Now()
	b.stop(t)
	if d := time.Since(t0); d < 80*time.Millisecond {
		t.Errorf("stop returned after %s, before the run in progress finished", d)
	}
	rs := b.sink.records()
	if len(rs) == 0 || rs[len(rs)-1].Error != "finished" || rs[len(rs)-1].Status != StatusUp {
		t.Fatalf("records after stop: %+v, want the finished run", rs)
	}
	if got := testutil.ToFloat64(b.s.m.pending); got != 0 {
		t.Errorf("%g records pending after stop", got)
	}
}

func TestStopDeadlineCancelsRuns(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	j := job("stuck", 10*time.Second, 0)
	j.Run = func(ctx context.Context) Outcome {
		started <- struct{}{}
		<-ctx.Done()
		return Outcome{Status: StatusError, Error: ctx.Err().Error()}
	}
	j.Interval, j.Timeout = time.Hour, time.Hour
	b := setup(t, Options{FlushInterval: time.Hour}, j)
	// Force the first run now rather than at its hashed offset.
	b.s.mu.Lock()
	e := b.s.entries["stuck"]
	e.next = time.Now()
	heap.Fix(&b.s.queue, e.index)
	b.s.mu.Unlock()
	b.s.poke()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := b.s.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "runs cancelled") {
		t.Fatalf("stop: %v, want runs cancelled", err)
	}
	rs := b.sink.records()
	if len(rs) != 1 || rs[0].Error != context.Canceled.Error() {
		t.Fatalf("records %+v, want the cancelled run", rs)
	}
}

func TestLagMetricExported(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, job("a", 50*time.Millisecond, 0))
	time.Sleep(300 * time.Millisecond)
	b.stop(t)
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
		if mf.GetName() != "steward_probe_schedule_lag_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if lbl := mf.GetMetric()[0].GetLabel()[0]; lbl.GetName() != "class" || lbl.GetValue() != ClassCheap {
			t.Errorf("label %s=%s, want class=cheap", lbl.GetName(), lbl.GetValue())
		}
		if h.GetSampleCount() < 4 {
			t.Errorf("lag histogram has %d samples, want about 6", h.GetSampleCount())
		}
	}
	for _, name := range []string{"steward_probe_schedule_lag_seconds", "steward_probe_runs_total"} {
		if !found[name] {
			t.Errorf("%s not exported", name)
		}
	}
	// Every record is counted once, as a run or (on a loaded machine) as
	// a miss.
	runs := testutil.ToFloat64(b.s.m.runs.WithLabelValues(ClassCheap))
	missed := testutil.ToFloat64(b.s.m.missed.WithLabelValues(ClassCheap))
	if got, want := runs+missed, float64(len(b.sink.records())); got != want {
		t.Errorf("steward_probe_runs_total %g + steward_probe_missed_runs_total %g = %g, want %g (records)", runs, missed, got, want)
	}
}
