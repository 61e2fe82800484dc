package integrity

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/jobs"
)

// JobActor is the actor recorded for scheduled runs.
const JobActor = "steward:schedule"

// RunArgs is the job that runs one check of a service.
type RunArgs struct {
	Service string `json:"service"`
	Check   string `json:"check"`
}

// Kind is the River job kind.
func (RunArgs) Kind() string { return "check.run" }

// InsertOpts keeps one run of a check queued or running at a time: a slow
// check does not pile up runs behind it. A check that could not run is
// recorded as error; the next scheduled run is its retry.
func (RunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 1,
		UniqueOpts:  jobs.UniqueWhileActive(),
	}
}

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	deps   Deps
	config func() *config.Config
}

// Work runs the check with the current config; a check removed from the
// config since the job was scheduled is skipped.
func (w *runWorker) Work(ctx context.Context, j *river.Job[RunArgs]) error {
	cfg := w.config()
	svc := cfg.Service(j.Args.Service)
	if svc == nil || svc.Check(j.Args.Check) == nil {
		w.deps.log().Warn("scheduled check no longer configured", "service", j.Args.Service, "check", j.Args.Check)
		return nil
	}
	_, err := Run(ctx, w.deps, svc, []string{j.Args.Check}, JobActor)
	return err
}

// Timeout leaves room for the check's own statement timeout and its
// samples; the statement timeout fires first.
func (w *runWorker) Timeout(j *river.Job[RunArgs]) time.Duration {
	if svc := w.config().Service(j.Args.Service); svc != nil {
		if c := svc.Check(j.Args.Check); c != nil {
			return 4*timeoutOf(c) + time.Minute
		}
	}
	return 5 * time.Minute
}

// RegisterWorkers registers the check worker; cfg returns the current
// config (it follows reloads).
func RegisterWorkers(reg *jobs.Registry, deps Deps, cfg func() *config.Config) {
	jobs.Register(reg, &runWorker{deps: deps, config: cfg})
}

// Periodic returns one periodic job per check with a schedule.
func Periodic(cfg *config.Config) []jobs.Periodic {
	var out []jobs.Periodic
	for _, s := range cfg.Services {
		for _, c := range s.Checks {
			if c.Schedule == "" {
				continue
			}
			out = append(out, jobs.Periodic{
				Name: fmt.Sprintf("check.run:%s/%s", s.Name, c.Name),
				Cron: c.Schedule,
				Args: RunArgs{Service: s.Name, Check: c.Name},
			})
		}
	}
	return out
}
