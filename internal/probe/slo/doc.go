// Package slo owns the arithmetic of service level objectives for probes:
// the SLI and error budget over a rolling window, multi-window
// multi-burn-rate alerts, and the alert state machine that turns them into
// notifications. It is pure: no I/O, no clock, no goroutines.
//
//   - Objective describes an availability or latency target over a window
//     (e.g. 99.9 % over 30 days, whose budget is 43.2 minutes), its burn
//     windows (DefaultWindows: page at burn rate 14.4 over 1h and 5m, page
//     at 6 over 6h and 30m, ticket at 1 over 3d and 6h) and MinSamples, the
//     guard that keeps a window with too few samples from firing.
//   - Evaluate computes a Status (SLI, budget remaining, burn rates, firing
//     windows) exactly from raw Samples. Broken samples (the probe, not the
//     target, failed) and samples inside maintenance Intervals are left
//     out; a Status at an instant inside maintenance is Muted.
//   - Series holds one objective's samples as per-minute and per-hour
//     counts in fixed memory (about 14 KB for 30 days) so thousands of
//     objectives can be evaluated in process; its precision is documented
//     on the type.
//   - Alerter turns successive Statuses into open and resolve Events with
//     dedup keys, after N consecutive agreeing evaluations (default 2),
//     without opening alerts while muted or while a dependency (depends_on)
//     is down — resolves are always sent.
//
// A burn rate is the bad fraction over a window divided by the budget
// (1 - Target): at burn rate 1 the budget lasts exactly the objective
// window. A window fires at or above its threshold.
package slo
