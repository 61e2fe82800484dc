package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// Runner runs registered jobs on River. A Runner is started at most once;
// Stop (or Close) ends it.
type Runner struct {
	cfg     Config
	logger  *slog.Logger
	b       backend
	metrics *metrics

	mu          sync.Mutex
	state       runnerState
	running     map[int64]JobInfo
	interrupted map[int64]*interruption // set when the grace period ends
	countsDone  chan struct{}           // closed when the metrics loop ends
	closeOnce   sync.Once
	closeErr    error
}

type runnerState int

const (
	stateNew runnerState = iota
	stateStarted
	stateStopping
	stateStopped
)

type interruption struct {
	info     JobInfo
	returned bool
	err      error
}

// New opens the Runner's own pool on cfg's database (SQLite: a *sql.DB with
// one connection; PostgreSQL: a pgxpool) and builds a River client with
// reg's workers. River's schema must be migrated (Migrate). Start runs jobs;
// Insert works before Start.
func New(ctx context.Context, cfg Config, reg *Registry) (*Runner, error) {
	if err := cfg.validateDatabase(); err != nil {
		return nil, err
	}
	if reg == nil {
		return nil, errors.New("jobs: registry is nil")
	}
	queues, err := cfg.queues()
	if err != nil {
		return nil, err
	}
	periodic, err := cfg.periodicJobs(reg)
	if err != nil {
		return nil, err
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("jobs: max attempts %d is negative", cfg.MaxAttempts)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		cfg:     cfg,
		logger:  cfg.logger(),
		metrics: m,
		running: make(map[int64]JobInfo),
	}
	rc := &river.Config{
		Logger:            r.logger,
		Queues:            queues,
		Workers:           reg.workers,
		PeriodicJobs:      periodic,
		MaxAttempts:       cfg.MaxAttempts,
		RetryPolicy:       cfg.RetryPolicy,
		JobTimeout:        cfg.JobTimeout,
		FetchPollInterval: cfg.PollInterval,
		Middleware:        []rivertype.Middleware{river.WorkerMiddlewareFunc(r.track)},
	}
	if cfg.PollInterval > 0 && cfg.PollInterval < river.FetchCooldownDefault {
		rc.FetchCooldown = max(cfg.PollInterval, river.FetchCooldownMin)
	}

	switch cfg.Dialect {
	case DialectSQLite:
		db, err := openSQLite(ctx, cfg.DSN)
		if err != nil {
			return nil, err
		}
		driver := newSQLiteDriver(db)
		if err := checkMigrated(ctx, driver, r.logger); err != nil {
			_ = db.Close()
			return nil, err
		}
		if r.b, err = newBackend(driver, rc, db.Close); err != nil {
			_ = db.Close()
			return nil, err
		}
	default:
		pool, err := openPostgres(ctx, cfg.DSN)
		if err != nil {
			return nil, err
		}
		driver := newPostgresDriver(pool)
		if err := checkMigrated(ctx, driver, r.logger); err != nil {
			pool.Close()
			return nil, err
		}
		closePool := func() error { pool.Close(); return nil }
		if r.b, err = newBackend(driver, rc, closePool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return r, nil
}

// Start starts fetching and working jobs, the maintenance services and,
// on the elected leader, the periodic jobs. Jobs run until Stop; cancelling
// ctx also stops the runner (River's soft stop, without the grace handling
// of Stop), so prefer Stop.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stateNew {
		return errors.New("jobs: runner already started")
	}
	events, cancelSub := r.b.subscribe(metricEventKinds...)
	if err := r.b.start(ctx); err != nil {
		cancelSub()
		return fmt.Errorf("jobs: start: %w", err)
	}
	r.state = stateStarted
	r.countsDone = make(chan struct{})
	go func() {
		defer close(r.countsDone)
		r.metrics.count(events)
	}()
	return nil
}

// Insert inserts a job and returns its ID. With opts.UniqueOpts, when an
// equivalent job exists, nothing is inserted and the existing job's ID is
// returned. opts may be nil; opts.MaxAttempts overrides Config.MaxAttempts.
func (r *Runner) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
	res, err := r.b.insert(ctx, args, opts)
	if err != nil {
		return 0, fmt.Errorf("jobs: insert %s: %w", args.Kind(), err)
	}
	return res.Job.ID, nil
}

// Stop stops fetching new jobs and waits up to grace for the running ones to
// finish. When grace ends (or ctx is done first), it cancels the jobs still
// running, waits for their workers to return (bounded by ctx), and reports
// each through Config.OnInterrupted; River makes them available again
// without consuming an attempt. Then it closes the pool. If workers ignore
// cancellation until ctx is done, Stop returns an error and leaves the pool
// open; Close releases it.
func (r *Runner) Stop(ctx context.Context, grace time.Duration) error {
	r.mu.Lock()
	state := r.state
	if state == stateStarted {
		r.state = stateStopping
	}
	r.mu.Unlock()
	switch state {
	case stateNew, stateStopped:
		return r.Close()
	case stateStopping:
		return errors.New("jobs: runner is already stopping")
	}

	graceCtx, cancel := context.WithTimeout(ctx, grace)
	err := r.b.stop(graceCtx)
	cancel()
	if err == nil {
		return r.finishStop()
	}

	r.mu.Lock()
	r.interrupted = make(map[int64]*interruption, len(r.running))
	for id, info := range r.running {
		r.interrupted[id] = &interruption{info: info}
	}
	n := len(r.interrupted)
	r.mu.Unlock()
	if n > 0 {
		r.logger.WarnContext(ctx, "jobs: grace period over, cancelling running jobs", "grace", grace, "running", n)
	}

	hardErr := r.b.stopAndCancel(ctx)
	r.reportInterrupted(ctx, grace)
	if hardErr != nil {
		return fmt.Errorf("jobs: stop: cancelled jobs still running: %w", hardErr)
	}
	return r.finishStop()
}

func (r *Runner) finishStop() error {
	<-r.countsDone
	r.mu.Lock()
	r.state = stateStopped
	r.mu.Unlock()
	return r.Close()
}

// reportInterrupted calls OnInterrupted for each job that was running when
// the grace period ended and did not complete successfully afterwards.
func (r *Runner) reportInterrupted(ctx context.Context, grace time.Duration) {
	r.mu.Lock()
	var list []*interruption
	for _, in := range r.interrupted {
		if in.returned && in.err == nil {
			continue // finished successfully despite the cancellation
		}
		list = append(list, &interruption{info: in.info, returned: in.returned, err: in.err})
	}
	r.mu.Unlock()
	slices.SortFunc(list, func(a, b *interruption) int { return cmp.Compare(a.info.ID, b.info.ID) })

	cbCtx := context.WithoutCancel(ctx)
	for _, in := range list {
		var err error
		if in.returned {
			err = fmt.Errorf("%w after %s grace: %w", ErrInterrupted, grace, in.err)
		} else {
			err = fmt.Errorf("%w after %s grace: worker still running when stop gave up", ErrInterrupted, grace)
		}
		r.logger.WarnContext(ctx, "jobs: job interrupted", "job_id", in.info.ID, "kind", in.info.Kind, "attempt", in.info.Attempt, "error", err)
		if r.cfg.OnInterrupted != nil {
			r.cfg.OnInterrupted(cbCtx, in.info, err)
		}
	}
}

// Close stops a runner that is still running without grace (as Stop with a
// zero grace) and closes its pool. It is safe to call more than once.
func (r *Runner) Close() error {
	r.mu.Lock()
	started := r.state == stateStarted
	r.mu.Unlock()
	if started {
		return r.Stop(context.Background(), 0)
	}
	r.closeOnce.Do(func() {
		if err := r.b.closePool(); err != nil {
			r.closeErr = fmt.Errorf("jobs: close pool: %w", err)
		}
	})
	return r.closeErr
}

// JobCounts returns the number of jobs in each River state (available,
// scheduled, running, retryable, completed, discarded, cancelled, pending),
// including zeros. Discarded jobs are those that failed permanently. It
// works before Start and until Stop or Close, which close the pool.
func (r *Runner) JobCounts(ctx context.Context) (map[string]int, error) {
	counts, err := r.b.executor().JobCountByAllStates(ctx, &riverdriver.JobCountByAllStatesParams{})
	if err != nil {
		return nil, fmt.Errorf("jobs: count jobs: %w", err)
	}
	out := make(map[string]int, len(counts))
	for state, n := range counts {
		out[string(state)] = n
	}
	return out, nil
}

// track is a River worker middleware that keeps the set of running jobs for
// Stop and the running gauge.
func (r *Runner) track(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	info := JobInfo{ID: job.ID, Kind: job.Kind, Queue: job.Queue, Attempt: job.Attempt, Args: job.EncodedArgs}
	r.mu.Lock()
	r.running[job.ID] = info
	r.mu.Unlock()
	r.metrics.running.Inc()

	returned := false
	defer func() {
		r.metrics.running.Dec()
		if !returned {
			err = errors.New("worker panicked") // River recovers and records the panic itself
		}
		r.mu.Lock()
		delete(r.running, job.ID)
		if in, ok := r.interrupted[job.ID]; ok {
			in.returned, in.err = true, err
		}
		r.mu.Unlock()
	}()
	err = doInner(ctx)
	returned = true
	return err
}
