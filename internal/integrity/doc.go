// Package integrity runs the integrity checks of a service's operative data
// (not_null, unique, foreign_key, accepted_values, row_predicate, freshness,
// row_count, sql, reconcile, amcheck, check_table) inside the database, in
// read-only transactions with statement timeouts, fusing the checks that can
// share one scan of a table into one query. It records each run, keeps the
// violation history per row key, audits every run and alerts on status
// transitions. Fixes live in internal/fix.
package integrity
