package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/jobs"
	"github.com/stewardhq/steward/internal/notify"
)

// RunArgs is the job that takes one scheduled backup.
type RunArgs struct {
	Service string `json:"service"`
	Backup  string `json:"backup"`
}

// Kind is the River job kind.
func (RunArgs) Kind() string { return "backup.run" }

// InsertOpts keep one run of a backup queued or running at a time.
func (RunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 3,
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

// StaleArgs is the job that alerts when a service's newest backup is older
// than its RPO objective.
type StaleArgs struct{}

// Kind is the River job kind.
func (StaleArgs) Kind() string { return "backup.stale_check" }

// JobDeps are what the backup jobs need; Config returns the current config.
type JobDeps struct {
	Deps   Deps
	Config func() *config.Config
}

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	d JobDeps
}

func (w *runWorker) Work(ctx context.Context, j *river.Job[RunArgs]) error {
	cfg := w.d.Config()
	svc := cfg.Service(j.Args.Service)
	if svc == nil {
		return river.JobCancel(fmt.Errorf("service %q is no longer configured", j.Args.Service))
	}
	b := svc.Backup(j.Args.Backup)
	if b == nil {
		return river.JobCancel(fmt.Errorf("backup %s/%s is no longer configured", j.Args.Service, j.Args.Backup))
	}
	_, err := Run(ctx, w.d.Deps, svc, b, "system:scheduler")
	return err
}

// Timeout leaves room for large dumps.
func (w *runWorker) Timeout(*river.Job[RunArgs]) time.Duration { return 12 * time.Hour }

type staleWorker struct {
	river.WorkerDefaults[StaleArgs]
	d JobDeps
}

func (w *staleWorker) Work(ctx context.Context, _ *river.Job[StaleArgs]) error {
	_, err := CheckStaleness(ctx, w.d.Deps, w.d.Config())
	return err
}

// RegisterWorkers registers the backup workers.
func RegisterWorkers(reg *jobs.Registry, d JobDeps) {
	jobs.Register(reg, &runWorker{d: d})
	jobs.Register(reg, &staleWorker{d: d})
}

// Periodic returns the scheduled backups of cfg and the staleness check.
func Periodic(cfg *config.Config) []jobs.Periodic {
	out := []jobs.Periodic{{Name: "backup.stale_check", Cron: "@every 5m", Args: StaleArgs{}, RunOnStart: true}}
	for _, s := range cfg.Services {
		for _, b := range s.Backups {
			if b.Schedule == "" || !Runs(b.Method) {
				continue
			}
			out = append(out, jobs.Periodic{Name: "backup." + s.Name + "." + b.Name, Cron: b.Schedule, Args: RunArgs{Service: s.Name, Backup: b.Name}})
		}
	}
	return out
}

// StaleBackup is a backup whose newest copy is older than the service's RPO.
type StaleBackup struct {
	Service string        `json:"service"`
	Backup  string        `json:"backup"`
	Age     time.Duration `json:"age"`
	RPO     time.Duration `json:"rpo"`
	None    bool          `json:"none"`
}

// CheckStaleness alerts for every backup (of a service with an RPO) whose
// newest copy is older than the RPO, and resolves the alert once a fresh
// backup exists. Only backups Steward takes are checked here.
func CheckStaleness(ctx context.Context, deps Deps, cfg *config.Config) ([]StaleBackup, error) {
	deps = deps.withDefaults()
	now := deps.Now()
	var stale []StaleBackup
	var errs []error
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		if svc.Objectives.RPO == "" {
			continue
		}
		rpo, err := config.ParseDuration(svc.Objectives.RPO)
		if err != nil {
			continue
		}
		for j := range svc.Backups {
			b := &svc.Backups[j]
			if !Runs(b.Method) {
				continue
			}
			repo, err := OpenRepository(ctx, b.Repository)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: %w", svc.Name, b.Name, err))
				continue
			}
			m, err := repo.Latest(ctx, svc.Name, b.Name)
			repo.Close()
			key := fmt.Sprintf("backup.stale:%s/%s", svc.Name, b.Name)
			switch {
			case errors.Is(err, ErrNoBackup):
				stale = append(stale, StaleBackup{Service: svc.Name, Backup: b.Name, RPO: rpo, None: true})
			case err != nil:
				errs = append(errs, fmt.Errorf("%s/%s: %w", svc.Name, b.Name, err))
				continue
			case Stale(m, rpo, now):
				stale = append(stale, StaleBackup{Service: svc.Name, Backup: b.Name, Age: m.Age(now), RPO: rpo})
			default:
				if deps.Notifier != nil {
					_, _ = deps.Notifier.Enqueue(ctx, notify.Message{Event: "backup.fresh", Severity: notify.SeverityInfo, Service: svc.Name,
						Title: fmt.Sprintf("Backup %s/%s is fresh again", svc.Name, b.Name), DedupKey: key, Resolve: true})
				}
				continue
			}
			last := stale[len(stale)-1]
			text := fmt.Sprintf("The newest backup is %s old; the RPO objective is %s.", last.Age.Round(time.Minute), rpo)
			if last.None {
				text = fmt.Sprintf("There is no backup at all; the RPO objective is %s.", rpo)
			}
			if deps.Notifier != nil {
				if _, err := deps.Notifier.Enqueue(ctx, notify.Message{Event: "backup.stale", Severity: notify.SeverityWarning, Service: svc.Name,
					Title: fmt.Sprintf("Backup %s/%s is older than the RPO", svc.Name, b.Name), Text: text + " Run: steward backup run " + svc.Name + "/" + b.Name,
					DedupKey: key}); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return stale, errors.Join(errs...)
}
