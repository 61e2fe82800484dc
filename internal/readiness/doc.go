// Package readiness grades each service on evidence Steward produced
// itself: the catalog of controls (backups, restore drills, integrity
// checks, access, alerting, the audit log, policies…), their evaluation per
// service from the store, the config and the audit log, waivers, the score
// formula, and the stored history of scorecards with its River job. The
// CLI (steward score), the API and the web UI present what it computes.
package readiness
