// Package drill rehearses restores: it picks a backup, provisions scratch,
// fetches, verifies and decrypts the backup, restores it, verifies the data
// (row counts, SQL assertions, pg_amcheck), measures RTO and RPO against the
// service's objectives and tears scratch down — and records all of it as
// evidence (drill_runs, audit, alerts). A real restore (the restore.run
// action) runs the same code path into a target instead of scratch. The
// package also keeps the history and RTO trend of drills and writes the
// runbook from the last successful one.
package drill
