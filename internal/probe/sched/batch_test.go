package sched

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startBatcher runs a batcher on sink; the returned function ends it like
// Stop does and returns its error.
func startBatcher(ctx context.Context, t *testing.T, sink *memSink, size int, every time.Duration) (*batcher, func() error) {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &batcher{sink: sink, size: size, interval: every, retry: 20 * time.Millisecond, log: testLogger(t), m: m,
		full: make(chan struct{}, 1), done: make(chan struct{}), exit: make(chan struct{})}
	go b.loop(ctx)
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			close(b.done)
			<-b.exit
		}
		return b.err
	}
	t.Cleanup(func() { _ = stop() })
	return b, stop
}

func rec(i int) Record { return Record{Key: fmt.Sprint(i), Status: StatusUp} }

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *memSink) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []int
	for _, b := range s.batches {
		n = append(n, len(b))
	}
	return n
}

func TestBatchCountTrigger(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	b, stop := startBatcher(t.Context(), t, sink, 5, time.Hour)
	for i := range 12 {
		b.add(rec(i))
	}
	waitFor(t, "two full batches", time.Second, func() bool { return len(sink.sizes()) == 2 })
	time.Sleep(50 * time.Millisecond)
	if got := sink.sizes(); len(got) != 2 || got[0] != 5 || got[1] != 5 {
		t.Fatalf("batches %v before stop, want [5 5]: the rest waits for the timer", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := sink.sizes(); len(got) != 3 || got[2] != 2 {
		t.Fatalf("batches %v after stop, want [5 5 2]", got)
	}
}

func TestBatchTimeTrigger(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	const every = 100 * time.Millisecond
	b, _ := startBatcher(t.Context(), t, sink, 1000, every)
	time.Sleep(30 * time.Millisecond)
	t0 := time.Now()
	b.add(rec(1))
	b.add(rec(2))
	waitFor(t, "a timed batch", time.Second, func() bool { return len(sink.sizes()) == 1 })
	if d := time.Since(t0); d > every+50*time.Millisecond {
		t.Errorf("batch written %s after the records, want within %s", d, every)
	}
	b.add(rec(3))
	time.Sleep(every / 2)
	if got := sink.sizes(); len(got) != 1 {
		t.Errorf("batches %v: a second batch came sooner than %s after the first", got, every)
	}
	waitFor(t, "a second timed batch", time.Second, func() bool { return len(sink.sizes()) == 2 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if d := sink.calls[1].Sub(sink.calls[0]); d < every-5*time.Millisecond {
		t.Errorf("timed batches %s apart, want at least %s", d, every)
	}
}

func TestSinkFailureThenRecoveryDeliversExactlyOnce(t *testing.T) {
	t.Parallel()
	sink := &memSink{failFirst: 4}
	b := setup(t, Options{Sink: sink, BatchSize: 7, FlushInterval: 50 * time.Millisecond, RetryDelay: 20 * time.Millisecond},
		job("a", 20*time.Millisecond, 0), job("b", 30*time.Millisecond, 0), job("c", 50*time.Millisecond, 0))
	time.Sleep(600 * time.Millisecond)
	b.stop(t)

	if sink.failed != 4 {
		t.Fatalf("sink failed %d times, want 4", sink.failed)
	}
	if got := testutil.ToFloat64(b.s.m.sinkFailures); got != 4 {
		t.Errorf("steward_probe_result_sink_failures_total = %g, want 4", got)
	}
	recs := sink.records()
	seen := map[string]bool{}
	for _, r := range recs {
		id := r.Key + "@" + r.Scheduled.String()
		if seen[id] {
			t.Errorf("%s delivered twice", id)
		}
		seen[id] = true
	}
	produced := testutil.ToFloat64(b.s.m.runs.WithLabelValues(ClassCheap)) + testutil.ToFloat64(b.s.m.missed.WithLabelValues(ClassCheap))
	if float64(len(recs)) != produced {
		t.Errorf("%d records delivered, %g produced", len(recs), produced)
	}
	if len(recs) < 40 {
		t.Errorf("%d records, want about 60", len(recs))
	}
	for key, rs := range sink.byKey() {
		checkContiguous(t, key, rs, map[string]time.Duration{"a": 20 * time.Millisecond, "b": 30 * time.Millisecond, "c": 50 * time.Millisecond}[key])
	}
}

func TestStopReportsUndelivered(t *testing.T) {
	t.Parallel()
	sink := &memSink{failFirst: 1 << 30}
	// ctx stands for Stop's deadline, which cancels the sink's context.
	ctx, cancel := context.WithCancel(t.Context())
	b, stop := startBatcher(ctx, t, sink, 10, time.Hour)
	for i := range 3 {
		b.add(rec(i))
	}
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("batcher gave up on a failing sink while its context was live: %v", err)
	default:
	}
	cancel()
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "3 results not delivered") || !errors.Is(err, errSinkDown) {
		t.Fatalf("error %v, want 3 results not delivered wrapping the sink's error", err)
	}
	if sink.failed < 3 {
		t.Errorf("%d attempts, want retries", sink.failed)
	}
}
