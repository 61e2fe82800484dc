// Package slowatch wires the SLO arithmetic of internal/probe/slo to the
// configuration, the store and the notification outbox. Its Evaluator
// reads probe results from the store (hour and minute rollups for old
// history, raw results since), combines the results of a probe's locations
// per scheduled slot with probe.Quorum, keeps one slo.Series per objective
// in memory, and on every evaluation:
//
//   - computes each objective's Status (SLI, budget, burn rates), leaving
//     out error, broken and missed checks and maintenance windows;
//   - moves each probe's state (up, degraded, down) after Confirmations
//     consecutive agreeing checks, and runs an slo.Alerter per probe (and
//     per service objective) for burn-rate alerts;
//   - opens and resolves alerts in the probe_alerts table, sends them to
//     the notify outbox with a dedup key per alert (so a resolve closes
//     what its open started), and audits each;
//   - saves its state in probe_slo_state, so a restart neither pages again
//     nor forgets to resolve, and exports the steward_slo_* metrics.
//
// It runs as the periodic River job probe.slo (EvalArgs) in steward serve;
// Report computes the same statuses on demand for steward slo status and
// GET /api/v1/slo.
package slowatch
