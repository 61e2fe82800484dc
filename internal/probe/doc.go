// Package probe runs synthetic probes — http, tcp, dns, tls, API journeys
// and rate-limit bursts — once, and reports a Result with timings, per-step
// outcomes and a clear reason on failure, with secrets redacted. Scheduling,
// SLOs and agents build on Run.
package probe
