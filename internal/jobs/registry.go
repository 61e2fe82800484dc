package jobs

import (
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Registry holds the workers a Runner runs, one per job kind. Build it in
// one place with explicit Register calls.
type Registry struct {
	workers *river.Workers
	kinds   map[string]bool
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{workers: river.NewWorkers(), kinds: make(map[string]bool)}
}

// Register adds w as the worker for T's kind. It panics when the kind is
// already registered or invalid: registration is static program wiring.
func Register[T river.JobArgs](r *Registry, w river.Worker[T]) {
	var args T
	kind := args.Kind()
	if r.kinds[kind] {
		panic(fmt.Sprintf("jobs: worker for kind %q registered twice", kind))
	}
	if err := river.AddWorkerSafely(r.workers, w); err != nil {
		panic(fmt.Sprintf("jobs: register worker for kind %q: %v", kind, err))
	}
	r.kinds[kind] = true
}

func (r *Registry) has(kind string) bool { return r.kinds[kind] }

// UniqueWhileActive is the uniqueness of a job that must not pile up: one
// job with the same args queued or running at a time (available, pending,
// retryable, running or scheduled); a new one can be inserted once it has
// finished, failed or been cancelled.
func UniqueWhileActive() river.UniqueOpts {
	return river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}
}
