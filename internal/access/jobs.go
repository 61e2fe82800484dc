package access

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/jobs"
)

// SweepInterval is how often the periodic sweep runs.
const SweepInterval = 5 * time.Second

// SweepArgs is the job that runs one Sweep.
type SweepArgs struct{}

// Kind is the River job kind.
func (SweepArgs) Kind() string { return "access.sweep" }

// InsertOpts keep at most one sweep queued or running: they do not pile up
// behind a slow database.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 1, // the next periodic sweep is the retry
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	d *Deps
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	_, err := Sweep(ctx, w.d, w.d.now())
	return err
}

// Timeout leaves room for many grants and slow session ends.
func (w *sweepWorker) Timeout(*river.Job[SweepArgs]) time.Duration { return 5 * time.Minute }

// RegisterWorkers registers the sweep worker.
func RegisterWorkers(reg *jobs.Registry, d *Deps) {
	jobs.Register(reg, &sweepWorker{d: d})
}

// Periodic is the sweep's schedule, for jobs.Config.Periodic.
func Periodic() jobs.Periodic {
	return jobs.Periodic{Name: "access.sweep", Cron: "@every " + SweepInterval.String(), Args: SweepArgs{}, RunOnStart: true}
}
