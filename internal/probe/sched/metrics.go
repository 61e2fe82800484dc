package sched

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lag          *prometheus.HistogramVec
	runs         *prometheus.CounterVec
	missed       *prometheus.CounterVec
	sinkFailures prometheus.Counter
	pending      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "steward_probe_schedule_lag_seconds",
			Help:    "Delay between a probe run's scheduled time and its start (or, for a missed run, the moment it was given up), by pool class.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"class"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_probe_runs_total",
			Help: "Probe runs started by the scheduler, by pool class.",
		}, []string{"class"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_probe_missed_runs_total",
			Help: "Scheduled probe runs that could not start on time and were recorded as missed, by pool class.",
		}, []string{"class"}),
		sinkFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "steward_probe_result_sink_failures_total",
			Help: "Failed attempts to write a batch of probe results (the batch is retried).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steward_probe_results_pending",
			Help: "Probe results waiting to be written to the sink.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lag, m.runs, m.missed, m.sinkFailures, m.pending} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("sched: register metrics: another scheduler already exports them: %w", err)
			}
			return nil, fmt.Errorf("sched: register metrics: %w", err)
		}
	}
	return m, nil
}
