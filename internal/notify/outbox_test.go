package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/all"
	"github.com/stewardhq/steward/internal/notify/webhook"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

const hookSecret = "outbox-test-secret"

// target is a webhook receiver on a fixed loopback address that can be taken
// down (listener closed), made to fail (503) and brought back. It counts
// accepted messages by delivery id.
type target struct {
	t    *testing.T
	addr string

	mu     sync.Mutex
	srv    *http.Server
	status int
	delay  time.Duration
	got    map[int64]int
	order  []webhook.Payload
	tries  int
}

func newTarget(t *testing.T) *target {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{t: t, addr: l.Addr().String(), status: http.StatusOK, got: map[int64]int{}}
	tg.serve(l)
	t.Cleanup(tg.down)
	return tg
}

func (tg *target) url() string { return "http://" + tg.addr + "/hook" }

func (tg *target) serve(l net.Listener) {
	srv := &http.Server{Handler: tg, ReadHeaderTimeout: 5 * time.Second}
	tg.mu.Lock()
	tg.srv = srv
	tg.mu.Unlock()
	go srv.Serve(l) //nolint:errcheck // returns when closed
}

// down closes the listener: senders get connection refused.
func (tg *target) down() {
	tg.mu.Lock()
	srv := tg.srv
	tg.srv = nil
	tg.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (tg *target) up() {
	tg.t.Helper()
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", tg.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tg.t.Fatalf("listen again on %s: %v", tg.addr, err)
	}
	tg.serve(l)
}

func (tg *target) setStatus(code int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.status = code
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	tg.mu.Lock()
	tg.tries++
	status, delay := tg.status, tg.delay
	tg.mu.Unlock()
	time.Sleep(delay)
	if status != http.StatusOK {
		http.Error(w, "maintenance", status)
		return
	}
	if err := webhook.Verify([]byte(hookSecret), body, r.Header.Get(webhook.SignatureHeader)); err != nil {
		tg.t.Errorf("receiver: %v", err)
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		tg.t.Errorf("receiver: %v", err)
	}
	tg.mu.Lock()
	tg.got[p.DeliveryID]++
	tg.order = append(tg.order, p)
	tg.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (tg *target) attempts() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.tries
}

// received returns the accepted payloads in arrival order and the count per
// delivery id.
func (tg *target) received() ([]webhook.Payload, map[int64]int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	counts := make(map[int64]int, len(tg.got))
	for k, v := range tg.got {
		counts[k] = v
	}
	return append([]webhook.Payload(nil), tg.order...), counts
}

// clock is the outbox's clock, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type bundle struct {
	url    string
	store  *store.Store
	clock  *clock
	cfg    config.Notify
	chans  map[string]notify.Channel
	outbox *notify.Outbox
	reg    *prometheus.Registry
}

// webhookChannels configures one webhook channel per target, named a, b, ….
func webhookChannels(targets ...*target) []config.Channel {
	var out []config.Channel
	for i, tg := range targets {
		out = append(out, config.Channel{Name: string(rune('a' + i)), Type: webhook.Type, URL: config.Secret(tg.url()), Secret: hookSecret})
	}
	return out
}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func setup(t *testing.T, url string, cfg config.Notify, opts notify.Options) *bundle {
	t.Helper()
	b := &bundle{url: url, store: openStore(t, url), clock: newClock(), cfg: cfg, reg: prometheus.NewRegistry()}
	chans, err := all.Build(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b.chans = chans
	opts.Now = b.clock.Now
	opts.Registerer = b.reg
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	b.outbox = notify.NewOutbox(b.store, cfg, chans, opts)
	return b
}

func (b *bundle) enqueue(t *testing.T, m notify.Message) []int64 {
	t.Helper()
	ids, err := b.outbox.Enqueue(t.Context(), m)
	if err != nil {
		t.Fatalf("enqueue %+v: %v", m, err)
	}
	return ids
}

// drain runs Deliver passes, moving the clock past any backoff, until
// nothing is pending.
func (b *bundle) drain(t *testing.T) {
	t.Helper()
	for range 50 {
		if _, _, err := b.outbox.Deliver(t.Context()); err != nil {
			t.Fatalf("deliver: %v", err)
		}
		if b.pending(t) == 0 {
			return
		}
		b.clock.Advance(notify.DefaultMaxBackoff + time.Second)
	}
	t.Fatalf("outbox not drained: %+v", b.status(t))
}

func (b *bundle) status(t *testing.T) []notify.ChannelStatus {
	t.Helper()
	st, err := b.outbox.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (b *bundle) pending(t *testing.T) int {
	t.Helper()
	n := 0
	for _, s := range b.status(t) {
		n += s.Pending
	}
	return n
}

func msg(i int) notify.Message {
	return notify.Message{Event: notify.EventActionPending, Severity: notify.SeverityWarning, Service: "shop",
		Title: fmt.Sprintf("message %d", i), DedupKey: fmt.Sprintf("m:%d", i)}
}

func TestOutboxTargetDownThenBackDeliversEachOnce(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tg := newTarget(t)
		b := setup(t, url, config.Notify{Channels: webhookChannels(tg)}, notify.Options{})
		tg.down() // connection refused
		var ids []int64
		for i := range 10 {
			ids = append(ids, b.enqueue(t, msg(i))...)
		}
		if len(ids) != 10 {
			t.Fatalf("enqueued %d rows, want 10", len(ids))
		}
		failures := 0
		for pass := range 6 {
			if pass == 3 {
				tg.up()
				tg.setStatus(http.StatusServiceUnavailable)
			}
			sent, failed, err := b.outbox.Deliver(t.Context())
			if err != nil || sent != 0 {
				t.Fatalf("deliver while down: sent %d, err %v", sent, err)
			}
			failures += failed
			b.clock.Advance(notify.DefaultMaxBackoff)
		}
		st := b.status(t)[0]
		if st.Pending != 10 || st.Delivered != 0 || st.LastError == "" || st.OldestPendingAge <= 0 || failures == 0 {
			t.Fatalf("status while down = %+v (failures %d)", st, failures)
		}
		if !strings.Contains(st.LastError, "503") {
			t.Errorf("last error %q does not show the 503", st.LastError)
		}
		r, err := b.store.GetOutbox(t.Context(), ids[0])
		if err != nil || r.Attempts != 6 || r.State != store.OutboxPending {
			t.Fatalf("first row after 6 failed passes = %+v, %v", r, err)
		}
		if v := metric(t, b.reg, "steward_notify_outbox_pending", "a"); v != 10 {
			t.Errorf("pending gauge = %v, want 10", v)
		}

		tg.setStatus(http.StatusOK)
		b.drain(t)
		payloads, counts := tg.received()
		for _, id := range ids {
			if counts[id] != 1 {
				t.Errorf("delivery %d arrived %d times, want exactly once", id, counts[id])
			}
		}
		if len(payloads) != 10 {
			t.Fatalf("receiver accepted %d messages, want 10", len(payloads))
		}
		for i, p := range payloads {
			if p.Title != fmt.Sprintf("message %d", i) {
				t.Errorf("message %d arrived as %q: order not kept", i, p.Title)
			}
		}
		st = b.status(t)[0]
		if st.Pending != 0 || st.Delivered != 10 || st.LastDeliveredAt == nil || st.LastError != "" {
			t.Fatalf("status after recovery = %+v", st)
		}
		if v := metric(t, b.reg, "steward_notify_deliveries_total", "a", "delivered"); v != 10 {
			t.Errorf("delivered counter = %v", v)
		}
		if v := metric(t, b.reg, "steward_notify_deliveries_total", "a", "retry"); v != float64(failures) {
			t.Errorf("retry counter = %v, want %d", v, failures)
		}
		if v := metric(t, b.reg, "steward_notify_outbox_pending", "a"); v != 0 {
			t.Errorf("pending gauge = %v, want 0", v)
		}
	})
}

func TestOutboxBackoff(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tg := newTarget(t)
		tg.setStatus(http.StatusInternalServerError)
		b := setup(t, url, config.Notify{Channels: webhookChannels(tg)}, notify.Options{})
		ids := b.enqueue(t, msg(1))
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
			if _, failed, err := b.outbox.Deliver(t.Context()); err != nil || failed != 1 {
				t.Fatalf("attempt %d: failed %d, err %v", i+1, failed, err)
			}
			r, _ := b.store.GetOutbox(t.Context(), ids[0])
			if got := r.NextAttemptAt.Sub(b.clock.Now()); got != want {
				t.Fatalf("after attempt %d the next is in %s, want %s", i+1, got, want)
			}
			// Not due yet: nothing is tried.
			b.clock.Advance(want - time.Millisecond)
			if _, failed, _ := b.outbox.Deliver(t.Context()); failed != 0 {
				t.Fatalf("row retried before its backoff ended")
			}
			b.clock.Advance(time.Millisecond)
		}
		// The cap.
		for range 20 {
			b.clock.Advance(notify.DefaultMaxBackoff)
			b.outbox.Deliver(t.Context())
		}
		r, _ := b.store.GetOutbox(t.Context(), ids[0])
		if got := r.NextAttemptAt.Sub(b.clock.Now()); got != notify.DefaultMaxBackoff {
			t.Fatalf("backoff after %d attempts = %s, want the cap %s", r.Attempts, got, notify.DefaultMaxBackoff)
		}
	})
}

func TestOutboxMaxAttemptsMarksFailed(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tg := newTarget(t)
		tg.setStatus(http.StatusBadGateway)
		b := setup(t, url, config.Notify{Channels: webhookChannels(tg)}, notify.Options{MaxAttempts: 3})
		b.enqueue(t, msg(1))
		for range 5 {
			b.outbox.Deliver(t.Context())
			b.clock.Advance(time.Minute)
		}
		st := b.status(t)[0]
		if st.Failed != 1 || st.Pending != 0 || !strings.Contains(st.LastError, "502") {
			t.Fatalf("status = %+v", st)
		}
		if v := metric(t, b.reg, "steward_notify_deliveries_total", "a", "failed"); v != 1 {
			t.Errorf("failed counter = %v", v)
		}
		if n := tg.attempts(); n != 3 {
			t.Errorf("receiver saw %d attempts, want 3", n)
		}
		// The same key again re-arms the failed row.
		tg.setStatus(http.StatusOK)
		if ids := b.enqueue(t, msg(1)); len(ids) != 1 {
			t.Fatalf("re-enqueue of a failed key: ids %v", ids)
		}
		b.drain(t)
		if _, counts := tg.received(); len(counts) != 1 {
			t.Fatalf("received %v", counts)
		}
	})
}

func TestOutboxSurvivesRestart(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tg := newTarget(t)
		cfg := config.Notify{Channels: webhookChannels(tg)}
		s, err := store.Open(t.Context(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		chans, err := all.Build(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		o := notify.NewOutbox(s, cfg, chans, notify.Options{})
		ids, err := o.Enqueue(t.Context(), msg(1))
		if err != nil || len(ids) != 1 {
			t.Fatalf("enqueue: %v %v", ids, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		b := setup(t, url, cfg, notify.Options{})
		if n := b.pending(t); n != 1 {
			t.Fatalf("pending after reopen = %d", n)
		}
		b.drain(t)
		if _, counts := tg.received(); counts[ids[0]] != 1 || len(counts) != 1 {
			t.Fatalf("received %v, want delivery %d once", counts, ids[0])
		}
	})
}

func TestOutboxDedupAndResolve(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tg := newTarget(t)
		b := setup(t, url, config.Notify{Channels: webhookChannels(tg)}, notify.Options{})
		m := notify.Message{Event: "probe.down", Severity: notify.SeverityCritical, Service: "shop", Title: "home down", DedupKey: "probe:home"}
		if ids := b.enqueue(t, m); len(ids) != 1 {
			t.Fatalf("first: %v", ids)
		}
		if ids := b.enqueue(t, m); len(ids) != 0 {
			t.Fatalf("repeat while pending enqueued %v", ids)
		}
		// A resolve enqueued while the trigger still waits is sent after it.
		tg.setStatus(http.StatusServiceUnavailable)
		b.outbox.Deliver(t.Context())
		res := m
		res.Resolve, res.Title = true, "home up"
		if ids := b.enqueue(t, res); len(ids) != 1 {
			t.Fatalf("resolve: %v", ids)
		}
		b.clock.Advance(time.Hour)
		tg.setStatus(http.StatusOK)
		b.drain(t)
		payloads, _ := tg.received()
		var got []string
		for _, p := range payloads[:2] {
			got = append(got, fmt.Sprintf("%s/%v/%s", p.Title, p.Resolve, p.DedupKey))
		}
		if strings.Join(got, " ") != "home down/false/probe:home home up/true/probe:home" {
			t.Fatalf("received %v, want the trigger then the resolve", got)
		}
		if ids := b.enqueue(t, res); len(ids) != 0 {
			t.Fatalf("a second resolve enqueued %v", ids)
		}
		// A resolve of something never sent is not sent.
		if ids := b.enqueue(t, notify.Message{Event: "probe.down", Severity: "info", DedupKey: "never", Resolve: true}); len(ids) != 0 {
			t.Fatalf("resolve without trigger enqueued %v", ids)
		}
	})
}

func TestOutboxDedupRepeatsAndNewIncident(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tg := newTarget(t)
		b := setup(t, url, config.Notify{Channels: webhookChannels(tg)}, notify.Options{})
		m := notify.Message{Event: "probe.down", Severity: notify.SeverityCritical, Title: "down", DedupKey: "k"}
		b.enqueue(t, m)
		b.drain(t)
		if ids := b.enqueue(t, m); len(ids) != 0 {
			t.Fatalf("repeat after delivery enqueued %v", ids)
		}
		res := m
		res.Resolve = true
		b.enqueue(t, res)
		b.drain(t)
		// After the resolve, the same key is a new incident: sent again, and
		// its resolve too.
		if ids := b.enqueue(t, m); len(ids) != 1 {
			t.Fatalf("new incident after resolve: %v", ids)
		}
		if ids := b.enqueue(t, res); len(ids) != 1 {
			t.Fatalf("resolve of the new incident: %v", ids)
		}
		b.drain(t)
		payloads, counts := tg.received()
		var flags []bool
		for _, p := range payloads {
			flags = append(flags, p.Resolve)
		}
		if !slices.Equal(flags, []bool{false, true, false, true}) {
			t.Fatalf("resolve flags in arrival order = %v", flags)
		}
		for id, n := range counts {
			if n != 1 {
				t.Errorf("delivery %d arrived %d times", id, n)
			}
		}
		if st := b.status(t)[0]; st.Delivered != 4 {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestRoute(t *testing.T) {
	t.Parallel()
	cfg := config.Notify{
		Channels: []config.Channel{{Name: "pager"}, {Name: "ops"}, {Name: "mail"}},
		Routes: []config.Route{
			{Match: config.RouteMatch{Severity: []string{"critical"}}, Channels: []string{"pager", "ops"}},
			{Match: config.RouteMatch{Event: []string{"action.*", "review.overdue"}, Service: []string{"shop"}}, Channels: []string{"ops"}},
			{Match: config.RouteMatch{Event: []string{"break_glass.used"}}, Channels: []string{"mail"}},
		},
	}
	for _, tc := range []struct {
		m    notify.Message
		want []string
	}{
		{notify.Message{Event: "probe.down", Severity: "critical"}, []string{"pager", "ops"}},
		{notify.Message{Event: "action.pending", Severity: "info", Service: "shop"}, []string{"ops"}},
		{notify.Message{Event: "action.pending", Severity: "info", Service: "billing"}, nil},
		{notify.Message{Event: "actions.x", Severity: "info", Service: "shop"}, nil}, // "action.*" is the prefix "action."
		{notify.Message{Event: "review.overdue", Severity: "warning", Service: "shop"}, []string{"ops"}},
		{notify.Message{Event: "review.opened", Severity: "warning", Service: "shop"}, nil},
		{notify.Message{Event: "break_glass.used", Severity: "critical", Service: "shop"}, []string{"pager", "ops", "mail"}},
		{notify.Message{Event: "notify.test", Severity: "info", All: true}, []string{"pager", "ops", "mail"}},
	} {
		if got := notify.Route(cfg, tc.m); !slices.Equal(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
			t.Errorf("Route(%s %s %s) = %v, want %v", tc.m.Event, tc.m.Severity, tc.m.Service, got, tc.want)
		}
	}
	cfg.Routes = nil
	if got := notify.Route(cfg, notify.Message{Event: "x"}); len(got) != 3 {
		t.Errorf("no routes: %v, want every channel", got)
	}
}

func TestOutboxRouting(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tgs := []*target{newTarget(t), newTarget(t), newTarget(t)}
		cfg := config.Notify{
			Channels: webhookChannels(tgs...),
			Routes: []config.Route{
				{Match: config.RouteMatch{Severity: []string{"critical"}}, Channels: []string{"a"}},
				{Match: config.RouteMatch{Event: []string{"action.*"}, Service: []string{"shop"}}, Channels: []string{"b"}},
			},
		}
		b := setup(t, url, cfg, notify.Options{})
		for _, m := range []notify.Message{
			{Event: "probe.down", Severity: "critical", Title: "1 → a"},
			{Event: "action.pending", Severity: "warning", Service: "shop", Title: "2 → b"},
			{Event: "action.pending", Severity: "warning", Service: "billing", Title: "3 → none"},
			{Event: "action.failed", Severity: "critical", Service: "shop", Title: "4 → a b"},
			{Event: "break_glass.used", Severity: "critical", Title: "5 → a b c", All: true},
		} {
			b.enqueue(t, m)
		}
		b.drain(t)
		for i, want := range [][]string{{"1 → a", "4 → a b", "5 → a b c"}, {"2 → b", "4 → a b", "5 → a b c"}, {"5 → a b c"}} {
			payloads, _ := tgs[i].received()
			var got []string
			for _, p := range payloads {
				got = append(got, p.Title)
			}
			if !slices.Equal(got, want) {
				t.Errorf("channel %c got %v, want %v", 'a'+i, got, want)
			}
		}
	})
}

func TestOutboxConcurrentDeliverersSendEachOnce(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, url string) {
		tgs := []*target{newTarget(t), newTarget(t)}
		for _, tg := range tgs {
			tg.delay = 2 * time.Millisecond
		}
		cfg := config.Notify{Channels: webhookChannels(tgs...)}
		// Two replicas: two stores on the same database, two outboxes.
		b1 := setup(t, url, cfg, notify.Options{})
		b2 := setup(t, url, cfg, notify.Options{})
		b2.clock = b1.clock
		b2.outbox = notify.NewOutbox(b2.store, cfg, b2.chans, notify.Options{Now: b1.clock.Now})
		const n = 40
		for i := range n {
			b1.enqueue(t, msg(i))
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for _, o := range []*notify.Outbox{b1.outbox, b2.outbox, b1.outbox, b2.outbox} {
			wg.Go(func() {
				for ctx.Err() == nil {
					sent, _, err := o.Deliver(ctx)
					if err != nil {
						t.Errorf("deliver: %v", err)
						return
					}
					mu.Lock()
					total += sent
					done := total >= 2*n
					mu.Unlock()
					if done {
						return
					}
				}
			})
		}
		wg.Wait()
		for i, tg := range tgs {
			_, counts := tg.received()
			if len(counts) != n {
				t.Errorf("target %d got %d distinct deliveries, want %d", i, len(counts), n)
			}
			for id, c := range counts {
				if c != 1 {
					t.Errorf("target %d: delivery %d arrived %d times", i, id, c)
				}
			}
		}
		if total != 2*n {
			t.Errorf("deliverers report %d sent, want %d", total, 2*n)
		}
	})
}

func TestEnqueueRejectsBadMessages(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	b := setup(t, testenv.SQLiteStoreURL(t), config.Notify{Channels: webhookChannels(tg)}, notify.Options{})
	for _, m := range []notify.Message{
		{Severity: "info"},
		{Event: "x", Severity: "urgent"},
		{Event: "x", Severity: "info", Resolve: true},
	} {
		if _, err := b.outbox.Enqueue(t.Context(), m); !errors.Is(err, notify.ErrInvalidMessage) {
			t.Errorf("enqueue %+v: err = %v", m, err)
		}
	}
	if _, err := b.outbox.EnqueueTo(t.Context(), msg(1), "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestRegistryPanicsOnDuplicate(t *testing.T) {
	t.Parallel()
	r := all.Registry()
	if got := strings.Join(r.Types(), ","); got != "email,pagerduty,slack,webhook" {
		t.Fatalf("types = %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate Register did not panic")
		}
	}()
	r.Register(webhook.Type, webhook.New)
}

func TestBuildNamesTheBrokenChannel(t *testing.T) {
	t.Parallel()
	_, err := all.Build(config.Notify{Channels: []config.Channel{
		{Name: "ok", Type: "webhook", URL: "http://127.0.0.1:1/"},
		{Name: "pager", Type: "pagerduty", RoutingKey: "env:STEWARD_TEST_UNSET_PD_KEY"},
	}}, nil)
	if err == nil || !strings.Contains(err.Error(), `"pager"`) || !strings.Contains(err.Error(), "STEWARD_TEST_UNSET_PD_KEY") {
		t.Fatalf("err = %v", err)
	}
	_, err = all.Build(config.Notify{Channels: []config.Channel{{Name: "x", Type: "sms"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "sms") {
		t.Fatalf("unknown type: %v", err)
	}
}

// metric returns the value of the series of name with the given label
// values (in label order), or -1.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, lp := range m.GetLabel() {
				vals = append(vals, lp.GetValue())
			}
			// Labels are sorted by name: channel, outcome.
			if slices.Equal(vals, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
