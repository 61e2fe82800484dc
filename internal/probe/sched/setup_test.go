package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testLogger routes logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// memSink keeps every batch; the first failFirst calls fail.
type memSink struct {
	mu        sync.Mutex
	batches   [][]Record
	calls     []time.Time
	failFirst int
	failed    int
}

var errSinkDown = errors.New("sink down")

func (s *memSink) WriteBatch(_ context.Context, recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	if s.failed < s.failFirst {
		s.failed++
		return errSinkDown
	}
	s.batches = append(s.batches, slices.Clone(recs))
	return nil
}

func (s *memSink) records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []Record
	for _, b := range s.batches {
		all = append(all, b...)
	}
	return all
}

func (s *memSink) byKey() map[string][]Record {
	m := make(map[string][]Record)
	for _, r := range s.records() {
		m[r.Key] = append(m[r.Key], r)
	}
	for _, rs := range m {
		slices.SortFunc(rs, func(a, b Record) int { return a.Scheduled.Compare(b.Scheduled) })
	}
	return m
}

type bundle struct {
	s    *Scheduler
	sink *memSink
	reg  *prometheus.Registry
}

// setup returns a started scheduler with the options (Sink, Registerer and
// Logger filled in), stopped at the end of the test if still running.
func setup(t *testing.T, opts Options, jobs ...Job) *bundle {
	t.Helper()
	b := &bundle{sink: &memSink{}, reg: prometheus.NewRegistry()}
	if opts.Sink == nil {
		opts.Sink = b.sink
	} else {
		b.sink = opts.Sink.(*memSink)
	}
	opts.Registerer = b.reg
	opts.Logger = testLogger(t)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.s = s
	if _, err := s.Update(jobs); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil && !errors.Is(err, ErrState) {
			t.Errorf("stop: %v", err)
		}
	})
	return b
}

func (b *bundle) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.s.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// job returns a cheap job that sleeps for d and reports up.
func job(key string, interval, d time.Duration) Job {
	return Job{Key: key, Interval: interval, Timeout: interval, Class: ClassCheap, Hash: "v1",
		Run: func(ctx context.Context) Outcome {
			if d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return Outcome{Status: StatusError, Error: ctx.Err().Error()}
				}
			}
			return Outcome{Status: StatusUp}
		}}
}

// checkContiguous fails unless rs (sorted) are consecutive occurrences of
// one job: every scheduled time accounted for, none twice.
func checkContiguous(t *testing.T, key string, rs []Record, interval time.Duration) {
	t.Helper()
	for i := 1; i < len(rs); i++ {
		if d := rs[i].Scheduled.Sub(rs[i-1].Scheduled); d != interval {
			t.Errorf("%s: occurrence %d scheduled %s after the previous, want exactly %s", key, i, d, interval)
		}
	}
}

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("svc-%d/probe", i)
	}
	return ks
}
