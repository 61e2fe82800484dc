package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/store"
)

func TestAppendConcurrent(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, dialect)
			reg := prometheus.NewRegistry()
			ctx := context.Background()
			l := New(s, Options{Logger: testLogger(t), Registerer: reg, MaxBatch: 7})
			l.Start(ctx)
			const writers, each = 16, 40
			var wg sync.WaitGroup
			got := make(chan Event, writers*each)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						ev, err := l.Append(ctx, Entry{Actor: fmt.Sprintf("w%d", w), Action: "token.create", Target: fmt.Sprint(i), Outcome: "ok", Details: json.RawMessage(`{"b":2,"a":1}`)})
						if err != nil {
							t.Error(err)
							return
						}
						got <- ev
					}
				}()
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			close(got)
			seen := map[int64]Event{}
			for ev := range got {
				if _, dup := seen[ev.Seq]; dup {
					t.Fatalf("seq %d returned twice", ev.Seq)
				}
				if string(ev.Details) != `{"a":1,"b":2}` || ev.Hash != HashEvent(ev) {
					t.Fatalf("event %+v", ev)
				}
				seen[ev.Seq] = ev
			}
			// The store holds exactly what Append returned, as one chain.
			n := int64(0)
			err := s.ScanAudit(ctx, 1, func(r store.AuditRecord) error {
				n++
				e := eventFromRecord(r)
				if r.Seq != n || e.Hash != seen[n].Hash || !e.Time.Equal(seen[n].Time) {
					return fmt.Errorf("row %d differs from the appended event", n)
				}
				return nil
			})
			if err != nil || n != writers*each {
				t.Fatalf("scan: %d rows, %v", n, err)
			}
			rep, err := Verify(ctx, StoreSource(s), nil)
			if err != nil || !rep.OK || rep.Events != writers*each {
				t.Fatalf("verify: %+v %v", rep, err)
			}
			if v := metricValue(t, reg, "steward_audit_events_total"); v != writers*each {
				t.Fatalf("steward_audit_events_total = %v", v)
			}
			if v := metricValue(t, reg, "steward_audit_append_seconds"); v != writers*each {
				t.Fatalf("steward_audit_append_seconds count = %v", v)
			}
		})
	}
}

// metricValue returns a counter's value or a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestAppendLifecycle(t *testing.T) {
	t.Parallel()
	s := openStore(t, store.SQLite)
	ctx := context.Background()
	l := New(s, Options{Logger: testLogger(t), Now: func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", 3600)) }})
	if _, err := l.Append(ctx, Entry{Actor: "a", Action: "server.start"}); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("before Start: %v", err)
	}
	l.Start(ctx)
	ev, err := l.Append(ctx, Entry{Actor: "a", Action: "server.start", Outcome: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 1 || ev.PrevHash != ZeroHash || string(ev.Details) != "{}" || ev.Time != time.Date(2025, 1, 2, 2, 4, 5, 678901000, time.UTC) {
		t.Fatalf("first event: %+v", ev)
	}
	for _, bad := range []Entry{
		{Action: "x"},
		{Actor: "a"},
		{Actor: "a", Action: "x", Details: []string{"not", "an", "object"}},
		{Actor: "a", Action: "x", Details: json.RawMessage(`{"a":1,"a":2}`)},
		{Actor: "a", Action: "x", Details: json.RawMessage(`{"a":`)},
		{Actor: "a\xff", Action: "x"},
		{Actor: "a", Action: "x", Details: func() {}},
	} {
		if _, err := l.Append(ctx, bad); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%+v: err = %v, want ErrInvalidEntry", bad, err)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(canceled, Entry{Actor: "a", Action: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := l.Append(ctx, Entry{Actor: "a", Action: "server.stop"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	head, err := s.AuditHead(ctx)
	if err != nil || head.Seq != 1 {
		t.Fatalf("head %+v %v", head, err)
	}
}

// Close while writers are appending: every Append either commits (and is in
// the store) or fails with ErrClosed; none is lost or left hanging.
func TestCloseUnderLoad(t *testing.T) {
	t.Parallel()
	for _, stopByCtx := range []bool{false, true} {
		t.Run(fmt.Sprintf("ctx=%v", stopByCtx), func(t *testing.T) {
			t.Parallel()
			s := openStore(t, store.SQLite)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := New(s, Options{Logger: testLogger(t)})
			l.Start(ctx)
			var ok, closed sync.Map
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						ev, err := l.Append(context.Background(), Entry{Actor: fmt.Sprint(w), Action: "job.interrupted", Target: fmt.Sprint(i)})
						switch {
						case err == nil:
							ok.Store(ev.Seq, true)
						case errors.Is(err, ErrClosed):
							closed.Store(w, true)
							return
						default:
							t.Error(err)
							return
						}
					}
				}()
			}
			time.Sleep(100 * time.Millisecond)
			if stopByCtx {
				cancel()
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			head, err := s.AuditHead(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n := int64(0)
			ok.Range(func(k, _ any) bool { n++; return true })
			if n == 0 || head.Seq != n {
				t.Fatalf("committed %d, head %d", n, head.Seq)
			}
		})
	}
}

// Two Logs on one store stand for a server and a CLI appending at once:
// each keeps its own idea of the head, and the chain must stay one chain.
func TestTwoWritersShareOneChain(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, dialect)
			ctx := context.Background()
			logs := []*Log{New(s, Options{Logger: testLogger(t)}), New(s, Options{Logger: testLogger(t)})}
			for _, l := range logs {
				l.Start(ctx)
			}
			const each = 150
			var wg sync.WaitGroup
			for i, l := range logs {
				for w := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := range each {
							if _, err := l.Append(ctx, Entry{Actor: fmt.Sprintf("log%d", i), Action: "test.append", Target: fmt.Sprintf("%d-%d", w, k)}); err != nil {
								t.Error(err)
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			for _, l := range logs {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := Verify(ctx, StoreSource(s), nil)
			if err != nil || !rep.OK || rep.Events != 2*4*each {
				t.Fatalf("verify: %+v %v", rep, err)
			}
		})
	}
}
