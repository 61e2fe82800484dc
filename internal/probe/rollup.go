package probe

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/jobs"
	"github.com/stewardhq/steward/internal/store"
)

// Default retention of the probe history before it is downsampled: raw
// results for a week, minute buckets for a month, hour buckets after.
const (
	DefaultRawKeep    = 7 * 24 * time.Hour
	DefaultMinuteKeep = 30 * 24 * time.Hour
)

// RollupInterval is how often the rollup job runs.
const RollupInterval = 10 * time.Minute

// RollupArgs is the job that downsamples old probe results (see
// store.RollupProbeResults). Zero keeps mean the defaults.
type RollupArgs struct {
	RawKeep    time.Duration `json:"raw_keep,omitempty"`
	MinuteKeep time.Duration `json:"minute_keep,omitempty"`
}

// Kind is the River job kind.
func (RollupArgs) Kind() string { return "probe.rollup" }

// InsertOpts keep one rollup queued or running at a time.
func (RollupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 3,
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

type rollupWorker struct {
	river.WorkerDefaults[RollupArgs]
	store *store.Store
}

func (w *rollupWorker) Work(ctx context.Context, j *river.Job[RollupArgs]) error {
	raw, minute := j.Args.RawKeep, j.Args.MinuteKeep
	if raw == 0 {
		raw = DefaultRawKeep
	}
	if minute == 0 {
		minute = DefaultMinuteKeep
	}
	if _, err := w.store.RollupProbeResults(ctx, time.Now(), raw, minute); err != nil {
		return fmt.Errorf("probe rollup: %w", err)
	}
	return nil
}

// Timeout leaves room for the first rollup of a long raw history.
func (w *rollupWorker) Timeout(*river.Job[RollupArgs]) time.Duration { return 30 * time.Minute }

// RegisterRollupWorker registers the worker of RollupArgs, which writes to st.
func RegisterRollupWorker(reg *jobs.Registry, st *store.Store) {
	jobs.Register(reg, &rollupWorker{store: st})
}

// RollupPeriodic schedules the rollup every RollupInterval with the default
// retention.
func RollupPeriodic() jobs.Periodic {
	return jobs.Periodic{Name: "probe.rollup", Cron: "@every " + RollupInterval.String(), Args: RollupArgs{}, RunOnStart: true}
}
