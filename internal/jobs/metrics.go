package jobs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Outcomes counted in steward_jobs_total.
const (
	OutcomeCompleted   = "completed"
	OutcomeRetried     = "retried"   // failed, will be retried
	OutcomeDiscarded   = "discarded" // failed on its last attempt
	OutcomeCancelled   = "cancelled"
	OutcomeSnoozed     = "snoozed"
	OutcomeInterrupted = "interrupted" // stopped by shutdown, available again
)

type metrics struct {
	total   *prometheus.CounterVec
	running prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_jobs_total",
			Help: "Job runs finished by this process, by job kind and outcome.",
		}, []string{"kind", "outcome"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steward_jobs_running",
			Help: "Jobs being worked by this process.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.total, m.running} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("jobs: register metrics: another runner already exports them: %w", err)
			}
			return nil, fmt.Errorf("jobs: register metrics: %w", err)
		}
	}
	return m, nil
}

var metricEventKinds = []river.EventKind{
	river.EventKindJobCompleted,
	river.EventKindJobFailed,
	river.EventKindJobCancelled,
	river.EventKindJobSnoozed,
	river.EventKindJobInterrupted,
}

func outcome(ev *river.Event) string {
	switch ev.Kind {
	case river.EventKindJobCompleted:
		return OutcomeCompleted
	case river.EventKindJobFailed:
		if ev.Job.State == rivertype.JobStateDiscarded {
			return OutcomeDiscarded
		}
		return OutcomeRetried
	case river.EventKindJobCancelled:
		return OutcomeCancelled
	case river.EventKindJobSnoozed:
		return OutcomeSnoozed
	case river.EventKindJobInterrupted:
		return OutcomeInterrupted
	}
	return ""
}

// count consumes events until the channel closes (when the client stops).
func (m *metrics) count(events <-chan *river.Event) {
	for ev := range events {
		if ev.Job == nil {
			continue
		}
		if o := outcome(ev); o != "" {
			m.total.WithLabelValues(ev.Job.Kind, o).Inc()
		}
	}
}
