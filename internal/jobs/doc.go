// Package jobs owns Steward's background job runner: a River
// (github.com/riverqueue/river) client over either of Steward's state stores,
// SQLite (riversqlite on a single-connection *sql.DB) or PostgreSQL
// (riverpgxv5 on a pgxpool), hidden behind one Runner.
//
// It owns River's schema (Migrate), the explicit worker Registry, periodic
// schedules given as cron specs, retries (River's exponential backoff unless a
// policy is configured; MaxAttempts per job through InsertOpts), unique jobs,
// graceful shutdown that reports every job still running when the grace
// period ends (Config.OnInterrupted), job metrics, and job counts by state.
// River's tables live in the same database as Steward's store and do not
// clash with it: River's are all named river_*.
package jobs
