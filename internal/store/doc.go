// Package store owns Steward's state database: opening it (SQLite through
// modernc.org/sqlite by default, PostgreSQL through pgx for HA), the embedded
// and versioned migrations for both dialects, and the typed queries every
// other package uses (users, API tokens, audit events, checkpoints).
//
// Both dialects share one schema; a conformance suite in store_test.go runs
// against each of them.
package store
