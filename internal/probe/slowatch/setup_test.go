package slowatch_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/all"
	"github.com/stewardhq/steward/internal/notify/webhook"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/store"
)

const hookSecret = "slo-test-secret"

// receiver is a webhook receiver on loopback that checks signatures.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []webhook.Payload
	bad int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if webhook.Verify([]byte(hookSecret), body, req.Header.Get(webhook.SignatureHeader)) != nil {
			r.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			r.bad++
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.got = append(r.got, p)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) payloads() []webhook.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Payload(nil), r.got...)
}

// bundle is one test's world: a store, the config, an outbox to a real
// webhook on loopback, and an evaluator.
type bundle struct {
	url    string
	store  *store.Store
	cfg    *config.Config
	outbox *notify.Outbox
	recv   *receiver
	reg    *prometheus.Registry
	eval   *slowatch.Evaluator
	audits []string
	mu     sync.Mutex
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// setup loads yaml (the services part of a config) and builds a bundle.
func setup(t *testing.T, url, yaml string) *bundle {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "steward.yaml")
	if err := os.WriteFile(path, []byte("steward: {data_dir: "+dir+"}\n"+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	st, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	b := &bundle{url: url, store: st, cfg: cfg, recv: newReceiver(t)}
	ncfg := config.Notify{Channels: []config.Channel{{Name: "hook", Type: webhook.Type, URL: config.Secret(b.recv.srv.URL), Secret: hookSecret}}}
	chans, err := all.Build(ncfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b.outbox = notify.NewOutbox(st, ncfg, chans, notify.Options{Logger: logger(t)})
	b.eval = b.newEvaluator(t)
	return b
}

// newEvaluator is a fresh evaluator on the bundle's store, as after a
// restart.
func (b *bundle) newEvaluator(t *testing.T) *slowatch.Evaluator {
	t.Helper()
	b.reg = prometheus.NewRegistry()
	m, err := slowatch.NewMetrics(b.reg)
	if err != nil {
		t.Fatal(err)
	}
	return slowatch.New(slowatch.Deps{Store: b.store, Notifier: b.outbox, Logger: logger(t), Metrics: m,
		Audit: func(_ context.Context, actor, action, target, outcome string, _ map[string]any) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.audits = append(b.audits, actor+" "+action+" "+target+" "+outcome)
			return nil
		}})
}

// slot is the k-th scheduled run of service/probe after base.
func slot(service, name string, interval time.Duration, base time.Time, k int) time.Time {
	off := sched.Offset(probe.Key(service, name), interval)
	start := base.Truncate(interval).Add(off)
	return start.Add(time.Duration(k) * interval)
}

// checks inserts n results of service/probe from location loc, one per
// slot from slot k, each with status and duration (a few milliseconds
// after the slot, like real starts).
func (b *bundle) checks(t *testing.T, service, name, loc string, interval time.Duration, base time.Time, k, n int, status string, dur time.Duration) time.Time {
	t.Helper()
	var rows []store.ProbeResultRow
	var last time.Time
	for i := range n {
		at := slot(service, name, interval, base, k+i)
		last = at
		row := store.ProbeResultRow{Service: service, Probe: name, Location: loc, Status: status,
			StartedAt: at.Add(3 * time.Millisecond), DurationMS: dur.Milliseconds()}
		if status == "down" {
			row.Error = "connection refused by http://shop.test/"
		}
		rows = append(rows, row)
	}
	if err := b.store.InsertProbeResults(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	return last
}

func (b *bundle) run(t *testing.T, now time.Time) slowatch.Outcome {
	t.Helper()
	out, err := b.eval.Run(t.Context(), b.cfg, now)
	if err != nil {
		t.Fatalf("evaluate at %s: %v", now, err)
	}
	return out
}

// runEvery evaluates at each step from from to to (inclusive).
func (b *bundle) runEvery(t *testing.T, from, to time.Time, step time.Duration) slowatch.Outcome {
	t.Helper()
	var sum slowatch.Outcome
	for now := from; !now.After(to); now = now.Add(step) {
		o := b.run(t, now)
		sum.Opened += o.Opened
		sum.Resolved += o.Resolved
	}
	return sum
}

// open returns the open alerts by "service/probe/name".
func (b *bundle) open(t *testing.T) map[string]store.ProbeAlertRow {
	t.Helper()
	rows, err := b.store.ListProbeAlerts(t.Context(), "", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.ProbeAlertRow{}
	for _, r := range rows {
		out[r.Service+"/"+r.Probe+"/"+r.Name] = r
	}
	return out
}

// deliver sends everything pending to the webhook.
func (b *bundle) deliver(t *testing.T) {
	t.Helper()
	for range 5 {
		n, failed, err := b.outbox.Deliver(t.Context())
		if err != nil || failed > 0 {
			t.Fatalf("deliver: %d failed, %v", failed, err)
		}
		if n == 0 {
			return
		}
	}
}

func keys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// gauge is the value of the gauge name whose label values, in order, are
// values; it fails the test when there is none.
func (b *bundle) gauge(t *testing.T, name string, values ...string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(values) {
				continue
			}
			// Labels are sorted by name; compare as a set of values.
			have := map[string]int{}
			for _, l := range m.GetLabel() {
				have[l.GetValue()]++
			}
			for _, v := range values {
				if have[v] == 0 {
					continue next
				}
				have[v]--
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, values)
	return 0
}
