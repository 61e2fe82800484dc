package access

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/jobs"
)

// ScanInterval is how often the scheduled standing-privilege scan of a
// service runs.
const ScanInterval = 6 * time.Hour

// ScanArgs is the job that scans every database of one service.
type ScanArgs struct {
	Service string `json:"service"`
}

// Kind is the River job kind.
func (ScanArgs) Kind() string { return "access.scan" }

// InsertOpts keeps one scan of a service queued or running at a time; a
// scan that fails is recorded as error and the next scheduled one is its
// retry.
func (ScanArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 1,
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

type scanWorker struct {
	river.WorkerDefaults[ScanArgs]
	deps   ScanDeps
	config func() *config.Config
}

// Work scans the service with the current config; a service removed since
// the job was scheduled is skipped.
func (w *scanWorker) Work(ctx context.Context, j *river.Job[ScanArgs]) error {
	svc := w.config().Service(j.Args.Service)
	if svc == nil {
		w.deps.log().Warn("scheduled access scan of a service no longer configured", "service", j.Args.Service)
		return nil
	}
	_, err := Scan(ctx, w.deps, svc, ScanActor)
	return err
}

// Timeout bounds a scan of all of a service's databases.
func (w *scanWorker) Timeout(*river.Job[ScanArgs]) time.Duration { return 10 * time.Minute }

// RegisterScanWorkers registers the scan worker; cfg returns the current
// config (it follows reloads).
func RegisterScanWorkers(reg *jobs.Registry, deps ScanDeps, cfg func() *config.Config) {
	jobs.Register(reg, &scanWorker{deps: deps, config: cfg})
}

// ScanPeriodic returns one periodic scan per service with databases,
// every ScanInterval, the first as soon as the scheduler starts.
func ScanPeriodic(cfg *config.Config) []jobs.Periodic {
	var out []jobs.Periodic
	for _, s := range cfg.Services {
		if len(s.Databases) == 0 {
			continue
		}
		out = append(out, jobs.Periodic{
			Name:       "access.scan:" + s.Name,
			Cron:       "@every " + ScanInterval.String(),
			Args:       ScanArgs{Service: s.Name},
			RunOnStart: true,
		})
	}
	return out
}
