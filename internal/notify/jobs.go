package notify

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/jobs"
)

// DeliverArgs is the job that runs one Outbox.Deliver pass.
type DeliverArgs struct{}

// Kind is the River job kind.
func (DeliverArgs) Kind() string { return "notify.deliver" }

// InsertOpts keeps at most one delivery job queued or running: passes do
// not pile up behind a slow channel.
func (DeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 1, // the next periodic pass is the retry
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

// DeliverInterval is how often the periodic delivery job runs.
const DeliverInterval = 5 * time.Second

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	outbox *Outbox
}

func (w *deliverWorker) Work(ctx context.Context, _ *river.Job[DeliverArgs]) error {
	_, _, err := w.outbox.Deliver(ctx)
	return err
}

// Timeout leaves room for a full batch of sends on a slow channel.
func (w *deliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration {
	return 5 * time.Minute
}

// RegisterWorkers registers the delivery worker of o.
func RegisterWorkers(reg *jobs.Registry, o *Outbox) {
	jobs.Register(reg, &deliverWorker{outbox: o})
}

// Periodic is the schedule of the delivery job, for jobs.Config.Periodic.
func Periodic() jobs.Periodic {
	return jobs.Periodic{
		Name:       "notify.deliver",
		Cron:       "@every " + DeliverInterval.String(),
		Args:       DeliverArgs{},
		RunOnStart: true,
	}
}
