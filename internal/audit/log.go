package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/internal/store"
)

// Sentinel errors callers branch on.
var (
	ErrClosed       = errors.New("audit log is closed")
	ErrNotStarted   = errors.New("audit log writer is not started")
	ErrInvalidEntry = errors.New("invalid audit entry")
)

// Entry is an event to append. Details is nil, a map, a struct, or a
// json.RawMessage, and must encode as a JSON object. Outcome is e.g. "ok",
// "denied" or "error".
type Entry struct {
	Actor, Action, Target, Outcome string
	Details                        any
}

// Options tune a Log.
type Options struct {
	Logger *slog.Logger
	// Now stamps events; time.Now by default.
	Now func() time.Time
	// MaxBatch caps the events committed in one transaction; 512 by default.
	MaxBatch int
	// Registerer receives steward_audit_append_seconds and
	// steward_audit_events_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// Log appends events to the hash chain kept in a store. Concurrent Appends
// are committed together (group commit) by one writer goroutine, which Start
// runs and Close stops.
type Log struct {
	store    *store.Store
	log      *slog.Logger
	now      func() time.Time
	maxBatch int
	latency  prometheus.Histogram
	events   prometheus.Counter

	reqs     chan *request
	mu       sync.RWMutex // guards started, closed; held shared while a sender registers
	started  bool
	closed   bool
	senders  sync.WaitGroup // Appends between registering and handing over
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when the writer has exited
	flushErr error         // the last failed commit of the final flush

	// Owned by the writer goroutine: the chain head it last wrote.
	head      store.AuditHead
	headValid bool
}

type request struct {
	ctx   context.Context
	rec   store.AuditRecord // Actor, Action, Target, Outcome, Details
	start time.Time
	done  chan result // buffered: the writer never blocks on it
}

type result struct {
	ev  Event
	err error
}

// New returns a Log on s. Call Start before Append.
func New(s *store.Store, opts Options) *Log {
	l := &Log{
		store:    s,
		log:      opts.Logger,
		now:      opts.Now,
		maxBatch: opts.MaxBatch,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.log = l.log.With("component", "audit")
	if l.now == nil {
		l.now = time.Now
	}
	if l.maxBatch <= 0 {
		l.maxBatch = 512
	}
	l.reqs = make(chan *request, l.maxBatch)
	l.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "steward_audit_append_seconds",
		Help:    "Time from Append to the commit of its event.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	l.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "steward_audit_events_total",
		Help: "Audit events committed by this process.",
	})
	if opts.Registerer != nil {
		l.latency = register(opts.Registerer, l.latency, l.log)
		l.events = register(opts.Registerer, l.events, l.log)
	}
	return l
}

// register registers c, or reuses the collector already registered under
// its name (a second Log in the same process counts into the same series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *slog.Logger) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("audit metrics not registered", "err", err)
	return c
}

// Start runs the writer until Close is called or ctx is done. Either way the
// writer commits every event already handed to it before it exits.
func (l *Log) Start(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed {
		return
	}
	l.started = true
	go l.run(ctx)
}

// Append commits e as the next event of the chain and returns it once it is
// durably committed. If ctx ends first Append returns its error; the event
// may then still be committed.
func (l *Log) Append(ctx context.Context, e Entry) (Event, error) {
	rec, err := prepare(e)
	if err != nil {
		return Event{}, err
	}
	r := &request{ctx: ctx, rec: rec, start: time.Now(), done: make(chan result, 1)}
	l.mu.RLock()
	switch {
	case l.closed:
		l.mu.RUnlock()
		return Event{}, fmt.Errorf("audit %s: %w", e.Action, ErrClosed)
	case !l.started:
		l.mu.RUnlock()
		return Event{}, fmt.Errorf("audit %s: %w", e.Action, ErrNotStarted)
	}
	l.senders.Add(1)
	l.mu.RUnlock()
	select {
	case l.reqs <- r:
		l.senders.Done()
	case <-ctx.Done():
		l.senders.Done()
		return Event{}, fmt.Errorf("audit %s: %w", e.Action, ctx.Err())
	}
	select {
	case res := <-r.done:
		return res.ev, res.err
	case <-ctx.Done():
		return Event{}, fmt.Errorf("audit %s: %w (the event may still be committed)", e.Action, ctx.Err())
	}
}

// Close commits what is pending, stops the writer and waits for it. Appends
// after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	l.mu.Lock()
	started := l.started
	l.closed = true
	l.mu.Unlock()
	if !started {
		return nil
	}
	<-l.done
	return l.flushErr
}

// run is the writer: it takes every request waiting, commits them in one
// transaction and answers each.
func (l *Log) run(ctx context.Context) {
	defer close(l.done)
	// Commits outlive ctx: an event handed over is committed even during
	// shutdown, so nothing is silently dropped.
	dbctx := context.WithoutCancel(ctx)
	for {
		select {
		case r := <-l.reqs:
			l.commit(dbctx, l.collect(r))
			continue
		case <-ctx.Done():
		case <-l.stop:
		}
		break
	}
	// Refuse new senders, let the registered ones hand over, then drain.
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	go func() {
		l.senders.Wait()
		close(l.reqs)
	}()
	for r := range l.reqs {
		if err := l.commit(dbctx, l.collect(r)); err != nil {
			l.flushErr = err
		}
	}
}

// collect returns first and every request already waiting, up to maxBatch.
func (l *Log) collect(first *request) []*request {
	batch := []*request{first}
	for len(batch) < l.maxBatch {
		select {
		case r, ok := <-l.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit appends the batch in one transaction and answers every request.
func (l *Log) commit(ctx context.Context, batch []*request) error {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: fmt.Errorf("audit %s: %w", r.rec.Action, err)}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return nil
	}
	evs := make([]Event, len(live))
	var err error
	// The writer keeps the chain head it last wrote and inserts after it in
	// one statement, without a lock. If another process appended meanwhile,
	// the insert conflicts on seq and writes nothing; the batch is then
	// appended under the store's lock, which reads the head in the same
	// transaction and always makes progress.
	if l.headValid {
		recs := l.build(l.head, live, evs)
		err = l.store.InsertAuditBatch(ctx, recs)
		if err == nil {
			last := recs[len(recs)-1]
			l.head = store.AuditHead{Seq: last.Seq, Hash: last.Hash}
		}
	}
	// Under the lock only another writer's lock-free insert can still get
	// in first; each such conflict means that writer made progress, so
	// retrying is bounded in practice. The bound here is a safety net.
	needLock := !l.headValid || errors.Is(err, store.ErrAuditConflict)
	for attempt := 0; needLock && attempt < 100; attempt++ {
		l.headValid = false
		var recs []store.AuditRecord
		err = l.store.AppendAudit(ctx, func(head store.AuditHead) ([]store.AuditRecord, error) {
			recs = l.build(head, live, evs)
			return recs, nil
		})
		if err == nil {
			last := recs[len(recs)-1]
			l.head, l.headValid = store.AuditHead{Seq: last.Seq, Hash: last.Hash}, true
		}
		needLock = errors.Is(err, store.ErrAuditConflict)
	}
	if err != nil {
		l.log.Error("audit append failed", "events", len(live), "err", err)
		for _, r := range live {
			r.done <- result{err: fmt.Errorf("audit %s: %w", r.rec.Action, err)}
		}
		return err
	}
	l.events.Add(float64(len(live)))
	for i, r := range live {
		l.latency.Observe(time.Since(r.start).Seconds())
		r.done <- result{ev: evs[i]}
	}
	return nil
}

// build numbers, stamps and hashes the batch after head, filling evs.
func (l *Log) build(head store.AuditHead, live []*request, evs []Event) []store.AuditRecord {
	prev := head.Hash
	if head.Seq == 0 {
		prev = ZeroHash
	}
	t := l.now().UTC().Truncate(time.Microsecond)
	recs := make([]store.AuditRecord, len(live))
	var buf []byte
	for i, r := range live {
		ev := Event{
			Seq: head.Seq + int64(i) + 1, Time: t,
			Actor: r.rec.Actor, Action: r.rec.Action, Target: r.rec.Target, Outcome: r.rec.Outcome,
			Details: json.RawMessage(r.rec.Details), PrevHash: prev,
		}
		buf, _ = appendCanonicalEvent(buf[:0], &ev) // details are canonical already
		sum := sha256.Sum256(buf)
		ev.Hash = hex.EncodeToString(sum[:])
		prev = ev.Hash
		evs[i] = ev
		rec := r.rec
		rec.Seq, rec.Time, rec.PrevHash, rec.Hash = ev.Seq, t, ev.PrevHash, ev.Hash
		recs[i] = rec
	}
	return recs
}

// prepare validates e and canonicalizes its details.
func prepare(e Entry) (store.AuditRecord, error) {
	if e.Actor == "" || e.Action == "" {
		return store.AuditRecord{}, fmt.Errorf("%w: actor and action are required (action %q)", ErrInvalidEntry, e.Action)
	}
	for _, f := range []string{e.Actor, e.Action, e.Target, e.Outcome} {
		if !utf8.ValidString(f) {
			return store.AuditRecord{}, fmt.Errorf("%w: %s: invalid UTF-8 in %q", ErrInvalidEntry, e.Action, f)
		}
	}
	var raw []byte
	switch d := e.Details.(type) {
	case nil:
	case json.RawMessage:
		raw = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return store.AuditRecord{}, fmt.Errorf("%w: %s: details: %w", ErrInvalidEntry, e.Action, err)
		}
		raw = b
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return store.AuditRecord{}, fmt.Errorf("%w: %s: details must be a JSON object", ErrInvalidEntry, e.Action)
	}
	canon, err := appendCanonicalJSON(nil, raw)
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("%w: %s: details: %w", ErrInvalidEntry, e.Action, err)
	}
	return store.AuditRecord{Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Details: string(canon)}, nil
}
