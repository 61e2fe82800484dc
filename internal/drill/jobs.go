package drill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/jobs"
)

// RunArgs is the job that runs one scheduled drill.
type RunArgs struct {
	Service string `json:"service"`
	Drill   string `json:"drill"`
}

// Kind is the River job kind.
func (RunArgs) Kind() string { return "drill.run" }

// InsertOpts: a failed drill is evidence, not a transient error; the next
// scheduled run is the retry.
func (RunArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	deps Deps
}

func (w *runWorker) Work(ctx context.Context, j *river.Job[RunArgs]) error {
	cfg := w.deps.Config()
	svc := cfg.Service(j.Args.Service)
	if svc == nil {
		return river.JobCancel(fmt.Errorf("service %q is no longer configured", j.Args.Service))
	}
	d := svc.Drill(j.Args.Drill)
	if d == nil {
		return river.JobCancel(fmt.Errorf("drill %s/%s is no longer configured", j.Args.Service, j.Args.Drill))
	}
	_, err := Run(ctx, w.deps, svc, d, RunOptions{Actor: "system:scheduler"})
	switch {
	case errors.Is(err, ErrAlreadyRunning):
		return nil // the run in progress is this schedule's evidence
	case errors.Is(err, ErrFailed):
		return nil // recorded, audited and alerted by Run
	}
	return err
}

// Timeout: a drill bounds each of its phases itself.
func (w *runWorker) Timeout(*river.Job[RunArgs]) time.Duration { return -1 }

// RegisterWorkers registers the drill worker.
func RegisterWorkers(reg *jobs.Registry, deps Deps) {
	jobs.Register(reg, &runWorker{deps: deps})
}

// Periodic returns the scheduled drills of cfg.
func Periodic(cfg *config.Config) []jobs.Periodic {
	var out []jobs.Periodic
	for _, s := range cfg.Services {
		for _, d := range s.Drills {
			if d.Schedule == "" {
				continue
			}
			out = append(out, jobs.Periodic{Name: "drill." + s.Name + "." + d.Name, Cron: d.Schedule, Args: RunArgs{Service: s.Name, Drill: d.Name}})
		}
	}
	return out
}
