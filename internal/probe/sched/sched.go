package sched

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by New.
const (
	// DefaultCheapWorkers bounds the cheap checks in flight. A check holds
	// its worker while it waits for the target, so the pool caps the
	// throughput at workers / response time: 256 workers keep 1,000
	// checks/s against targets answering in 250 ms (bench/probebench
	// missed runs with 64 when a loaded machine slowed the target).
	DefaultCheapWorkers   = 256
	DefaultBrowserWorkers = 2
	DefaultLateTolerance  = 0.5
	DefaultBatchSize      = 500
	DefaultFlushInterval  = time.Second
	DefaultRetryDelay     = 200 * time.Millisecond
)

// Options configure a Scheduler.
type Options struct {
	// Sink receives the records; required.
	Sink Sink
	// Pools maps a class to its number of workers. Empty means
	// {ClassCheap: DefaultCheapWorkers, ClassBrowser: DefaultBrowserWorkers}.
	Pools map[string]int
	// LateTolerance is how late, as a fraction of the job's interval, a run
	// may still start; a run that would start later is recorded as missed.
	// 0 means DefaultLateTolerance.
	LateTolerance float64
	// BatchSize and FlushInterval: the sink gets a batch when BatchSize
	// records wait, or FlushInterval after the last write when fewer do.
	BatchSize     int
	FlushInterval time.Duration
	// RetryDelay is the first delay before a failed batch is retried; it
	// doubles up to 10s.
	RetryDelay time.Duration
	// Registerer, when set, receives the steward_probe_* scheduler metrics.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
}

// Scheduler runs Jobs on their intervals. Update may be called at any time;
// Start and Stop once each.
type Scheduler struct {
	opts  Options
	log   *slog.Logger
	m     *metrics
	pools map[string]*pool
	batch *batcher

	mu      sync.Mutex
	state   int // stateNew, stateRunning, stateStopped
	entries map[string]*entry
	queue   entryHeap

	wake         chan struct{} // capacity 1: the schedule changed
	stopDispatch chan struct{}
	dispatchDone chan struct{}
	workers      sync.WaitGroup
	runCtx       context.Context
	cancelRuns   context.CancelFunc
	cancelSink   context.CancelFunc
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// ErrState is returned by Start and Stop called out of order.
var ErrState = errors.New("sched: Start and Stop must be called once each, in that order")

// New checks the options and registers the metrics.
func New(opts Options) (*Scheduler, error) {
	if opts.Sink == nil {
		return nil, errors.New("sched: no sink")
	}
	if len(opts.Pools) == 0 {
		opts.Pools = map[string]int{ClassCheap: DefaultCheapWorkers, ClassBrowser: DefaultBrowserWorkers}
	}
	for c, n := range opts.Pools {
		if n < 1 {
			return nil, fmt.Errorf("sched: pool %q: %d workers, need at least 1", c, n)
		}
	}
	if opts.LateTolerance == 0 {
		opts.LateTolerance = DefaultLateTolerance
	}
	if opts.LateTolerance < 0 {
		return nil, fmt.Errorf("sched: late tolerance %g: must be positive", opts.LateTolerance)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = DefaultRetryDelay
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		opts:         opts,
		log:          log,
		m:            m,
		pools:        make(map[string]*pool, len(opts.Pools)),
		entries:      make(map[string]*entry),
		wake:         make(chan struct{}, 1),
		stopDispatch: make(chan struct{}),
		dispatchDone: make(chan struct{}),
	}
	for c, n := range opts.Pools {
		s.pools[c] = newPool(c, n)
	}
	s.batch = &batcher{
		sink:     opts.Sink,
		size:     opts.BatchSize,
		interval: opts.FlushInterval,
		retry:    opts.RetryDelay,
		log:      log,
		m:        m,
		full:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		exit:     make(chan struct{}),
	}
	return s, nil
}

// Changes says what an Update did.
type Changes struct {
	Added, Changed, Removed []string
	Unchanged               int
}

// Update makes jobs the set of scheduled jobs. A job whose interval is
// unchanged keeps its next run time, whatever else changed (its next run
// uses the new definition); a job whose interval changed, or a new job, is
// put on the grid of its interval from now; a removed job is not run again
// (a run in progress completes). Changes reports a job as changed when its
// timeout, class or hash changed too.
// Invalid jobs are all reported and nothing is applied.
func (s *Scheduler) Update(jobs []Job) (Changes, error) {
	var errs []error
	seen := make(map[string]bool, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if err := j.validate(s.opts.Pools); err != nil {
			errs = append(errs, err)
		}
		if seen[j.Key] {
			errs = append(errs, fmt.Errorf("job %q: duplicate key", j.Key))
		}
		seen[j.Key] = true
	}
	if len(errs) > 0 {
		return Changes{}, fmt.Errorf("sched: update: %w", errors.Join(errs...))
	}

	var ch Changes
	now := time.Now()
	s.mu.Lock()
	for _, j := range jobs {
		e, ok := s.entries[j.Key]
		switch {
		case ok && sameSchedule(&e.job, &j):
			e.job = j
			ch.Unchanged++
		case ok && e.job.Interval == j.Interval:
			// Same grid: keep the slot sequence, so no slot is lost.
			e.job = j
			ch.Changed = append(ch.Changed, j.Key)
		case ok:
			e.job = j
			e.next = firstRun(now, j.Key, j.Interval)
			heap.Fix(&s.queue, e.index)
			ch.Changed = append(ch.Changed, j.Key)
		default:
			ne := &entry{job: j, busy: new(atomic.Bool), next: firstRun(now, j.Key, j.Interval)}
			s.entries[j.Key] = ne
			heap.Push(&s.queue, ne)
			ch.Added = append(ch.Added, j.Key)
		}
	}
	for key, e := range s.entries {
		if !seen[key] {
			heap.Remove(&s.queue, e.index)
			delete(s.entries, key)
			ch.Removed = append(ch.Removed, key)
		}
	}
	s.mu.Unlock()
	slices.Sort(ch.Removed)
	s.poke()
	s.log.Info("probe schedule updated", "added", len(ch.Added), "changed", len(ch.Changed), "removed", len(ch.Removed), "unchanged", ch.Unchanged)
	return ch, nil
}

// NextRun is when the job is next due.
func (s *Scheduler) NextRun(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return time.Time{}, false
	}
	return e.next, true
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start starts the dispatcher, the workers and the batcher. Cancelling ctx
// stops dispatching and cancels runs in progress; Stop must still be called
// to flush the results.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return ErrState
	}
	s.state = stateRunning
	// Jobs added before Start are put on their grid from now.
	now := time.Now()
	for _, e := range s.entries {
		e.next = firstRun(now, e.job.Key, e.job.Interval)
	}
	heap.Init(&s.queue)

	s.runCtx, s.cancelRuns = context.WithCancel(ctx)
	sinkCtx, cancelSink := context.WithCancel(context.WithoutCancel(ctx))
	s.cancelSink = cancelSink
	for _, c := range slices.Sorted(maps.Keys(s.pools)) {
		p := s.pools[c]
		for range p.size {
			s.workers.Go(func() { s.work(p) })
		}
	}
	go s.batch.loop(sinkCtx)
	go s.dispatch(ctx)
	return nil
}

// Stop stops dispatching, lets the runs in progress and those already due
// finish (or be recorded as missed), then writes every record to the sink.
// When ctx ends first, runs are cancelled and the sink's context too; the
// error then says how many records were not delivered.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateRunning {
		s.mu.Unlock()
		return ErrState
	}
	s.state = stateStopped
	s.mu.Unlock()

	close(s.stopDispatch)
	<-s.dispatchDone
	for _, p := range s.pools {
		p.close()
	}
	workersDone := make(chan struct{})
	go func() { s.workers.Wait(); close(workersDone) }()
	var err error
	select {
	case <-workersDone:
	case <-ctx.Done():
		err = fmt.Errorf("sched: stop: runs cancelled: %w", ctx.Err())
		s.cancelRuns()
		<-workersDone
	}
	s.cancelRuns()

	close(s.batch.done)
	select {
	case <-s.batch.exit:
	case <-ctx.Done():
		s.cancelSink()
		<-s.batch.exit
	}
	s.cancelSink()
	return errors.Join(err, s.batch.err)
}

// dispatch hands due occurrences to their pools and advances each job by
// exactly one interval, so completion times never shift the schedule.
func (s *Scheduler) dispatch(ctx context.Context) {
	defer close(s.dispatchDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	due := make(map[string][]occurrence)
	for {
		now := time.Now()
		wait := time.Hour
		s.mu.Lock()
		for len(s.queue) > 0 {
			e := s.queue[0]
			if d := e.next.Sub(now); d > 0 {
				wait = d
				break
			}
			due[e.job.Class] = append(due[e.job.Class], occurrence{job: e.job, scheduled: e.next, busy: e.busy})
			e.next = e.next.Add(e.job.Interval)
			heap.Fix(&s.queue, 0)
		}
		s.mu.Unlock()
		for c, occs := range due {
			if len(occs) > 0 {
				s.pools[c].push(occs) // copies
				due[c] = occs[:0]
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-s.wake:
		case <-s.stopDispatch:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *Scheduler) work(p *pool) {
	for {
		o, ok := p.pop()
		if !ok {
			return
		}
		s.batch.add(s.handle(o))
	}
}

// handle runs the occurrence, or records why it could not start on time.
func (s *Scheduler) handle(o occurrence) Record {
	now := time.Now()
	lag := now.Sub(o.scheduled)
	r := Record{Key: o.job.Key, Class: o.job.Class, Scheduled: o.scheduled, Lag: lag}
	tolerance := time.Duration(float64(o.job.Interval) * s.opts.LateTolerance)
	s.m.lag.WithLabelValues(o.job.Class).Observe(lag.Seconds())
	switch {
	case s.runCtx.Err() != nil:
		r.Status, r.Error = StatusMissed, "scheduler stopped before the run could start"
	case lag > tolerance:
		r.Status = StatusMissed
		r.Error = fmt.Sprintf("could not start within %s of its scheduled time: all %d %s workers busy", tolerance, s.pools[o.job.Class].size, o.job.Class)
	case !o.busy.CompareAndSwap(false, true):
		r.Status, r.Error = StatusMissed, "previous run still in progress"
	default:
		r.Started = now
		out := run(s.runCtx, &o.job)
		o.busy.Store(false)
		r.Status, r.Duration, r.Error = out.Status, out.Duration, out.Error
		if r.Duration == 0 {
			r.Duration = time.Since(now)
		}
		s.m.runs.WithLabelValues(o.job.Class).Inc()
		return r
	}
	s.m.missed.WithLabelValues(o.job.Class).Inc()
	return r
}

// run calls the job with its timeout; a panic or an empty status becomes an
// error outcome.
func run(parent context.Context, j *Job) (out Outcome) {
	ctx, cancel := context.WithTimeout(parent, j.Timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			out = Outcome{Status: StatusError, Error: fmt.Sprintf("probe panicked: %v", v)}
		}
	}()
	out = j.Run(ctx)
	switch out.Status {
	case StatusUp, StatusDown, StatusError:
	default:
		out = Outcome{Status: StatusError, Duration: out.Duration, Error: fmt.Sprintf("probe returned status %q (want up, down or error): %s", out.Status, out.Error)}
	}
	return out
}

// entry is a scheduled job; entryHeap orders entries by next run.
type entry struct {
	job   Job
	next  time.Time
	busy  *atomic.Bool
	index int
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
