package slowatch

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/jobs"
)

// DefaultInterval is how often steward serve evaluates SLOs and alerts.
const DefaultInterval = 30 * time.Second

// EvalArgs is the periodic job that runs the Evaluator.
type EvalArgs struct{}

// Kind is the River job kind.
func (EvalArgs) Kind() string { return "probe.slo" }

// InsertOpts keep one evaluation queued or running at a time: the
// evaluator's decisions need one writer.
func (EvalArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 1,
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

type evalWorker struct {
	river.WorkerDefaults[EvalArgs]
	eval   *Evaluator
	config func() *config.Config
}

func (w *evalWorker) Work(ctx context.Context, _ *river.Job[EvalArgs]) error {
	if _, err := w.eval.Run(ctx, w.config(), time.Now()); err != nil {
		return fmt.Errorf("slo evaluation: %w", err)
	}
	return nil
}

// Timeout leaves room for the first evaluation, which loads the history.
func (w *evalWorker) Timeout(*river.Job[EvalArgs]) time.Duration { return 5 * time.Minute }

// RegisterWorker registers the worker of EvalArgs; config returns the
// current configuration (it changes on reload).
func RegisterWorker(reg *jobs.Registry, e *Evaluator, config func() *config.Config) {
	jobs.Register(reg, &evalWorker{eval: e, config: config})
}

// Periodic schedules the evaluation every interval (DefaultInterval when
// zero).
func Periodic(interval time.Duration) jobs.Periodic {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return jobs.Periodic{Name: "probe.slo", Cron: "@every " + interval.String(), Args: EvalArgs{}, RunOnStart: true}
}
