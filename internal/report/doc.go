// Package report builds the auditor's evidence export: for a period, per
// service and per control of the readiness catalog, every evidence item
// Steward holds (backups, drills, checks, fixes and guarded SQL with their
// approvals, grants and their revocation, scans, break-glass reviews, kit
// drills, notifications, probe availability, checkpoints), each tied to the
// audit event that records it, and the signed checkpoint that covers those
// events. It renders the report as HTML, Markdown or JSON and writes it with
// the audit export, the checkpoint and the verifier key, so an auditor can
// check with `steward audit verify` that nothing was altered. It only reads.
package report
