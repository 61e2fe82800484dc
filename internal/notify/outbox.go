package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// Defaults of Options.
const (
	DefaultMaxBackoff  = 10 * time.Minute
	DefaultSendTimeout = 30 * time.Second
	DefaultBatchSize   = 100
)

// Options tune an Outbox.
type Options struct {
	Logger *slog.Logger
	// Registerer, when set, receives steward_notify_deliveries_total
	// {channel,outcome} and steward_notify_outbox_pending{channel}.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxAttempts is how many attempts a row gets before it is marked
	// failed; 0 retries forever.
	MaxAttempts int
	// MaxBackoff caps the wait between attempts (1 s, 2 s, 4 s, …);
	// 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// SendTimeout bounds one Send; 0 means DefaultSendTimeout.
	SendTimeout time.Duration
	// Lease is how long a claimed row is reserved for its deliverer; it
	// must exceed SendTimeout. 0 means 2×SendTimeout.
	Lease time.Duration
	// BatchSize is how many due rows one Deliver pass reads; 0 means
	// DefaultBatchSize.
	BatchSize int
}

// Outbox stores messages for each channel they are routed to and delivers
// them with retries. Enqueue and Deliver may run in several processes on the
// same store: a row is claimed before it is sent, so one deliverer sends it at
// a time, and the delivery id lets receivers drop the rare repeat (a
// deliverer that crashed after sending, before recording it).
type Outbox struct {
	store *store.Store
	cfg   config.Notify
	chans map[string]Channel
	opts  Options
	log   *slog.Logger
	now   func() time.Time

	deliveries *prometheus.CounterVec
	pending    *prometheus.GaugeVec
}

// NewOutbox returns an Outbox over s for the channels built from cfg.
func NewOutbox(s *store.Store, cfg config.Notify, chans map[string]Channel, opts Options) *Outbox {
	o := &Outbox{store: s, cfg: cfg, chans: chans, opts: opts, log: opts.Logger, now: opts.Now}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.opts.MaxBackoff <= 0 {
		o.opts.MaxBackoff = DefaultMaxBackoff
	}
	if o.opts.SendTimeout <= 0 {
		o.opts.SendTimeout = DefaultSendTimeout
	}
	if o.opts.Lease <= o.opts.SendTimeout {
		o.opts.Lease = 2 * o.opts.SendTimeout
	}
	if o.opts.BatchSize <= 0 {
		o.opts.BatchSize = DefaultBatchSize
	}
	o.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "steward_notify_deliveries_total",
		Help: "Notification delivery attempts by channel and outcome (delivered, retry, failed).",
	}, []string{"channel", "outcome"})
	o.pending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "steward_notify_outbox_pending",
		Help: "Notifications waiting in the outbox, by channel (as of the last delivery pass).",
	}, []string{"channel"})
	if r := opts.Registerer; r != nil {
		o.deliveries = register(r, o.deliveries)
		o.pending = register(r, o.pending)
	}
	return o
}

// register registers c, or returns the collector already registered under
// its name (several outboxes in one process share the metrics).
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// Enqueue routes m and stores one row per channel it goes to. A repeat of a
// DedupKey that is pending or delivered on a channel is not stored again; a
// Resolve is stored only on channels that have the key it resolves. It
// returns the ids of the new rows (also the delivery ids channels see).
func (o *Outbox) Enqueue(ctx context.Context, m Message) ([]int64, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	names := Route(o.cfg, m)
	if len(names) == 0 {
		o.log.InfoContext(ctx, "no notification route matches", "event", m.Event, "severity", m.Severity, "service", m.Service)
	}
	return o.EnqueueTo(ctx, m, names...)
}

// EnqueueTo stores m for the named channels, ignoring routes, with the same
// deduplication as Enqueue.
func (o *Outbox) EnqueueTo(ctx context.Context, m Message, channels ...string) ([]int64, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	for _, name := range channels {
		if !o.configured(name) {
			return nil, fmt.Errorf("notify: unknown channel %q", name)
		}
	}
	if m.DedupKey == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		m.DedupKey = "msg:" + hex.EncodeToString(b[:])
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	now := o.now()
	var ids []int64
	for _, name := range channels {
		id, ok, err := o.store.EnqueueOutbox(ctx, store.OutboxRow{
			Channel: name, Event: m.Event, Severity: m.Severity, Service: m.Service,
			DedupKey: m.DedupKey, Payload: string(payload), CreatedAt: now, NextAttemptAt: now,
		}, m.Resolve)
		if err != nil {
			return ids, err
		}
		if !ok {
			o.log.DebugContext(ctx, "notification deduplicated", "channel", name, "event", m.Event, "dedup_key", m.DedupKey, "resolve", m.Resolve)
			continue
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (o *Outbox) configured(name string) bool {
	if _, ok := o.chans[name]; ok {
		return true
	}
	return slices.ContainsFunc(o.cfg.Channels, func(c config.Channel) bool { return c.Name == name })
}

// Deliver sends the rows that are due, each channel in its own goroutine and
// in row order. A failed attempt is recorded with its error and retried
// after 1 s, 2 s, 4 s, … (capped at MaxBackoff); after a failure the
// channel's other rows wait for the next pass. It returns how many rows were
// delivered and how many attempts failed; err reports store errors only.
func (o *Outbox) Deliver(ctx context.Context) (sent, failed int, err error) {
	rows, err := o.store.DueOutbox(ctx, o.now(), o.opts.BatchSize)
	if err != nil {
		return 0, 0, err
	}
	sent, failed, err = o.deliver(ctx, rows)
	o.refreshPending(ctx)
	return sent, failed, err
}

// DeliverNow sends the given rows at once, whether due or not (pending rows
// only), as `steward notify test` does.
func (o *Outbox) DeliverNow(ctx context.Context, ids ...int64) (sent, failed int, err error) {
	var rows []store.OutboxRow
	for _, id := range ids {
		r, err := o.store.GetOutbox(ctx, id)
		if err != nil {
			return 0, 0, err
		}
		if r.State == store.OutboxPending {
			rows = append(rows, r)
		}
	}
	sent, failed, err = o.deliver(ctx, rows)
	o.refreshPending(ctx)
	return sent, failed, err
}

func (o *Outbox) deliver(ctx context.Context, rows []store.OutboxRow) (sent, failed int, err error) {
	byChannel := map[string][]store.OutboxRow{}
	var order []string
	for _, r := range rows {
		if _, ok := byChannel[r.Channel]; !ok {
			order = append(order, r.Channel)
		}
		byChannel[r.Channel] = append(byChannel[r.Channel], r)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, name := range order {
		wg.Go(func() {
			s, f, err := o.deliverChannel(ctx, name, byChannel[name])
			mu.Lock()
			defer mu.Unlock()
			sent += s
			failed += f
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return sent, failed, errors.Join(errs...)
}

func (o *Outbox) deliverChannel(ctx context.Context, name string, rows []store.OutboxRow) (sent, failed int, err error) {
	log := o.log.With("channel", name)
	for _, r := range rows {
		if ctx.Err() != nil {
			return sent, failed, ctx.Err()
		}
		lease := o.now().Add(o.opts.Lease).UTC().Truncate(time.Microsecond)
		ok, err := o.store.ClaimOutbox(ctx, r.ID, r.NextAttemptAt, lease)
		if err != nil {
			return sent, failed, err
		}
		if !ok {
			continue // another deliverer has it
		}
		sendErr, permanent := o.send(ctx, name, r)
		if sendErr == nil {
			ok, err := o.store.MarkOutboxDelivered(ctx, r.ID, lease, o.now())
			if err != nil {
				return sent, failed, err
			}
			if !ok {
				log.WarnContext(ctx, "notification delivered after its lease ran out; another deliverer may send it again", "id", r.ID)
			}
			sent++
			o.deliveries.WithLabelValues(name, "delivered").Inc()
			log.DebugContext(ctx, "notification delivered", "id", r.ID, "event", r.Event, "attempt", r.Attempts+1)
			continue
		}
		failed++
		attempts := r.Attempts + 1
		giveUp := permanent || (o.opts.MaxAttempts > 0 && attempts >= o.opts.MaxAttempts)
		next := o.now().Add(o.backoff(attempts))
		if _, err := o.store.MarkOutboxRetry(ctx, r.ID, lease, sendErr.Error(), next, giveUp); err != nil {
			return sent, failed, err
		}
		if giveUp {
			o.deliveries.WithLabelValues(name, "failed").Inc()
			log.ErrorContext(ctx, "notification failed; giving up", "id", r.ID, "event", r.Event, "attempts", attempts, "err", sendErr)
		} else {
			o.deliveries.WithLabelValues(name, "retry").Inc()
			log.WarnContext(ctx, "notification attempt failed; will retry", "id", r.ID, "event", r.Event, "attempts", attempts, "next_attempt", next, "err", sendErr)
		}
		// The channel is likely down: leave its other rows for the next pass.
		return sent, failed, nil
	}
	return sent, failed, nil
}

// send sends one row. permanent reports an error no retry can fix (a
// payload that does not decode).
func (o *Outbox) send(ctx context.Context, name string, r store.OutboxRow) (err error, permanent bool) {
	var m Message
	if err := json.Unmarshal([]byte(r.Payload), &m); err != nil {
		return fmt.Errorf("decode stored notification %d: %w", r.ID, err), true
	}
	ch, ok := o.chans[name]
	if !ok {
		return fmt.Errorf("channel %q is not configured (add it to notify.channels, or the row waits)", name), false
	}
	ctx, cancel := context.WithTimeout(ctx, o.opts.SendTimeout)
	defer cancel()
	return ch.Send(ctx, m, r.ID), false
}

// backoff is the wait after the n-th failed attempt: 1 s·2^(n-1), capped.
func (o *Outbox) backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 30 {
		return o.opts.MaxBackoff
	}
	return min(time.Second<<(n-1), o.opts.MaxBackoff)
}

// ChannelStatus is the outbox seen from one channel.
type ChannelStatus struct {
	Channel    string `json:"channel"`
	Type       string `json:"type,omitempty"`
	Configured bool   `json:"configured"`
	Pending    int    `json:"pending"`
	Delivered  int    `json:"delivered"`
	Failed     int    `json:"failed"`
	// OldestPendingAt is when the oldest pending row was enqueued;
	// OldestPendingAge how long ago that was.
	OldestPendingAt         *time.Time    `json:"oldest_pending_at,omitempty"`
	OldestPendingAge        time.Duration `json:"-"`
	OldestPendingAgeSeconds float64       `json:"oldest_pending_age_seconds,omitempty"`
	LastError               string        `json:"last_error,omitempty"`
	LastDeliveredAt         *time.Time    `json:"last_delivered_at,omitempty"`
}

// Status reports every configured channel, in config order, then channels
// that have rows but are no longer configured.
func (o *Outbox) Status(ctx context.Context) ([]ChannelStatus, error) {
	stats, err := o.store.OutboxStats(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.OutboxChannelStats{}
	for _, s := range stats {
		byName[s.Channel] = s
	}
	now := o.now()
	mk := func(name, typ string, configured bool) ChannelStatus {
		s := byName[name]
		cs := ChannelStatus{Channel: name, Type: typ, Configured: configured, Pending: s.Pending, Delivered: s.Delivered,
			Failed: s.Failed, OldestPendingAt: s.OldestPending, LastError: s.LastError, LastDeliveredAt: s.LastDeliveredAt}
		if s.OldestPending != nil {
			cs.OldestPendingAge = max(now.Sub(*s.OldestPending), 0)
			cs.OldestPendingAgeSeconds = cs.OldestPendingAge.Seconds()
		}
		return cs
	}
	var out []ChannelStatus
	seen := map[string]bool{}
	for _, c := range o.cfg.Channels {
		seen[c.Name] = true
		out = append(out, mk(c.Name, c.Type, true))
	}
	for _, s := range stats {
		if !seen[s.Channel] {
			typ := ""
			if ch, ok := o.chans[s.Channel]; ok {
				typ = ch.Type()
			}
			out = append(out, mk(s.Channel, typ, false))
		}
	}
	o.setPending(stats)
	return out, nil
}

func (o *Outbox) refreshPending(ctx context.Context) {
	stats, err := o.store.OutboxStats(ctx)
	if err != nil {
		o.log.WarnContext(ctx, "refresh outbox metrics", "err", err)
		return
	}
	o.setPending(stats)
}

func (o *Outbox) setPending(stats []store.OutboxChannelStats) {
	for _, c := range o.cfg.Channels {
		o.pending.WithLabelValues(c.Name).Set(0)
	}
	for _, s := range stats {
		o.pending.WithLabelValues(s.Channel).Set(float64(s.Pending))
	}
}
