package readiness

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/jobs"
)

// ScoreArgs is the River job that evaluates every service's scorecard and
// stores it in the history.
type ScoreArgs struct{}

// Kind is the River job kind.
func (ScoreArgs) Kind() string { return "readiness.score" }

// InsertOpts keep one evaluation queued or running at a time.
func (ScoreArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 3,
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

type scoreWorker struct {
	river.WorkerDefaults[ScoreArgs]
	eval *Evaluator
}

func (w *scoreWorker) Work(ctx context.Context, _ *river.Job[ScoreArgs]) error {
	sc, err := w.eval.Evaluate(ctx, "")
	if err != nil {
		return fmt.Errorf("readiness score: %w", err)
	}
	if err := Record(ctx, w.eval.Store, sc); err != nil {
		return fmt.Errorf("readiness score: %w", err)
	}
	w.eval.logger().Info("readiness scorecard recorded", "services", len(sc.Services), "score", sc.Score)
	return nil
}

// Timeout bounds one evaluation (it verifies the whole audit log).
func (w *scoreWorker) Timeout(*river.Job[ScoreArgs]) time.Duration { return 15 * time.Minute }

// RegisterWorker registers the worker of ScoreArgs, which evaluates with e.
func RegisterWorker(reg *jobs.Registry, e *Evaluator) {
	jobs.Register(reg, &scoreWorker{eval: e})
}

// Periodic schedules the evaluation on readiness.schedule (hourly by
// default), and once when the server starts.
func Periodic(cfg *config.Config) jobs.Periodic {
	spec := cfg.Readiness.Schedule
	if spec == "" {
		spec = "@hourly"
	}
	return jobs.Periodic{Name: "readiness.score", Cron: spec, Args: ScoreArgs{}, RunOnStart: true}
}
