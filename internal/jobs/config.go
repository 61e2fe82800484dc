package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"
)

// Dialects accepted in Config.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Defaults applied by New.
const (
	// DefaultQueue is the queue River uses when InsertOpts names none.
	DefaultQueue = river.QueueDefault
	// DefaultQueueWorkers is the number of workers of DefaultQueue when
	// Config.Queues is empty.
	DefaultQueueWorkers = 4
	// DefaultSQLiteBusyTimeout is the busy_timeout set on River's SQLite
	// connection when the DSN sets none.
	DefaultSQLiteBusyTimeout = 10 * time.Second
)

// Config configures a Runner and Migrate.
type Config struct {
	// Dialect is DialectSQLite or DialectPostgres.
	Dialect string
	// DSN is, for SQLite, a modernc.org/sqlite DSN or path, e.g.
	// "file:/x/steward.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)";
	// for PostgreSQL, a postgres:// URL. On SQLite, a busy_timeout of
	// DefaultSQLiteBusyTimeout and _txlock=immediate are added unless the DSN
	// sets them, so that River's transactions wait for the store's writers
	// instead of failing with SQLITE_BUSY.
	DSN string
	// Logger receives the runner's and River's logs; nil discards them.
	Logger *slog.Logger
	// Queues maps a queue name to its maximum number of concurrent workers.
	// Empty means {DefaultQueue: DefaultQueueWorkers}.
	Queues map[string]int
	// Periodic lists the jobs inserted on a schedule by the elected leader.
	Periodic []Periodic
	// OnInterrupted is called by Stop, once per job still running when the
	// grace period ended, after the job was cancelled (err wraps
	// ErrInterrupted and what the worker returned). The context is not
	// cancelled with Stop's, so the call can record an audit event; bound
	// any slow work yourself.
	OnInterrupted func(ctx context.Context, j JobInfo, err error)
	// Registerer, when set, receives steward_jobs_total{kind,outcome} and
	// steward_jobs_running.
	Registerer prometheus.Registerer

	// MaxAttempts is the default number of attempts of a job whose
	// InsertOpts set none; 0 means River's default (25).
	MaxAttempts int
	// RetryPolicy decides when a failed job is retried; nil means River's
	// default exponential backoff (attempt^4 seconds).
	RetryPolicy river.ClientRetryPolicy
	// JobTimeout bounds a job's run unless its worker's Timeout overrides it;
	// 0 means River's default (1 minute), -1 means no timeout.
	JobTimeout time.Duration
	// PollInterval is how often idle queues look for new jobs; 0 means
	// River's default (1s). SQLite has no LISTEN/NOTIFY, so on SQLite this
	// is the latency between an insert and the start of its job.
	PollInterval time.Duration
}

// Periodic is a job inserted on a cron schedule.
type Periodic struct {
	// Name identifies the periodic job; unique within a Config.
	Name string
	// Cron is a standard 5-field spec or a descriptor such as "@hourly" or
	// "@every 1m", as parsed by robfig/cron/v3 ParseStandard.
	Cron string
	// Args is inserted each time the schedule fires; its kind must be
	// registered.
	Args river.JobArgs
	// Opts are the insert options of each inserted job; may be nil.
	Opts *river.InsertOpts
	// RunOnStart inserts a job as soon as the scheduler starts, then follows
	// the schedule.
	RunOnStart bool
}

// JobInfo describes a job to callbacks.
type JobInfo struct {
	ID      int64
	Kind    string
	Queue   string
	Attempt int
	Args    []byte // the job's JSON-encoded args
}

// ErrInterrupted is wrapped by the error given to Config.OnInterrupted.
var ErrInterrupted = errors.New("job interrupted by shutdown")

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Config) validateDatabase() error {
	switch c.Dialect {
	case DialectSQLite, DialectPostgres:
	case "":
		return errors.New("jobs: dialect is empty, want sqlite or postgres")
	default:
		return fmt.Errorf("jobs: unknown dialect %q, want sqlite or postgres", c.Dialect)
	}
	if c.DSN == "" {
		return fmt.Errorf("jobs: %s DSN is empty", c.Dialect)
	}
	return nil
}

func (c *Config) queues() (map[string]river.QueueConfig, error) {
	if len(c.Queues) == 0 {
		return map[string]river.QueueConfig{DefaultQueue: {MaxWorkers: DefaultQueueWorkers}}, nil
	}
	qs := make(map[string]river.QueueConfig, len(c.Queues))
	for name, n := range c.Queues {
		if n < 1 || n > river.QueueNumWorkersMax {
			return nil, fmt.Errorf("jobs: queue %q: max workers %d out of range 1..%d", name, n, river.QueueNumWorkersMax)
		}
		qs[name] = river.QueueConfig{MaxWorkers: n}
	}
	return qs, nil
}

// periodicJobs turns c.Periodic into River periodic jobs, checking each
// spec and that a worker is registered for each kind.
func (c *Config) periodicJobs(reg *Registry) ([]*river.PeriodicJob, error) {
	seen := make(map[string]bool, len(c.Periodic))
	jobs := make([]*river.PeriodicJob, 0, len(c.Periodic))
	for i, p := range c.Periodic {
		if p.Name == "" {
			return nil, fmt.Errorf("jobs: periodic job #%d has no name", i+1)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("jobs: periodic job %q defined twice", p.Name)
		}
		seen[p.Name] = true
		sched, err := ParseCron(p.Cron)
		if err != nil {
			return nil, fmt.Errorf("jobs: periodic job %q: %w", p.Name, err)
		}
		if p.Args == nil {
			return nil, fmt.Errorf("jobs: periodic job %q has no args", p.Name)
		}
		if !reg.has(p.Args.Kind()) {
			return nil, fmt.Errorf("jobs: periodic job %q: no worker registered for kind %q", p.Name, p.Args.Kind())
		}
		args, opts := p.Args, p.Opts
		jobs = append(jobs, river.NewPeriodicJob(sched,
			func() (river.JobArgs, *river.InsertOpts) { return args, opts },
			&river.PeriodicJobOpts{ID: p.Name, RunOnStart: p.RunOnStart},
		))
	}
	return jobs, nil
}

// ParseCron parses a standard 5-field cron spec or a descriptor such as
// "@daily" or "@every 5m" into a River schedule.
func ParseCron(spec string) (river.PeriodicSchedule, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("cron spec is empty")
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron spec %q: %w", spec, err)
	}
	return s, nil
}

// sqliteDSN adds to dsn the connection settings River's SQLite pool needs
// when the caller did not choose them: a busy timeout, so a write waits for
// Steward's store instead of failing with SQLITE_BUSY, and immediate
// transactions, so a River transaction that reads before it writes takes the
// write lock up front (waiting under the busy timeout) instead of failing
// with SQLITE_BUSY when it upgrades its read lock.
func sqliteDSN(dsn string) (string, error) {
	base, rawQuery, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("jobs: sqlite DSN query: %w", err)
	}
	var extra []string
	if !hasBusyTimeout(q) {
		extra = append(extra, fmt.Sprintf("_pragma=busy_timeout(%d)", DefaultSQLiteBusyTimeout.Milliseconds()))
	}
	if q.Get("_txlock") == "" {
		extra = append(extra, "_txlock=immediate")
	}
	if len(extra) == 0 {
		return dsn, nil
	}
	if rawQuery != "" {
		extra = append([]string{rawQuery}, extra...)
	}
	return base + "?" + strings.Join(extra, "&"), nil
}

func hasBusyTimeout(q url.Values) bool {
	if q.Get("_busy_timeout") != "" || q.Get("_timeout") != "" {
		return true
	}
	for _, p := range q["_pragma"] {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), "busy_timeout") {
			return true
		}
	}
	return false
}
