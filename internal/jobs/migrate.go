package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
)

// migrateLockKey is the PostgreSQL advisory lock that serialises concurrent
// Migrate calls ("stewjobs" in ASCII).
const migrateLockKey int64 = 0x737465776a6f6273

// sqliteMigrateAttempts bounds the retries of a SQLite migration that lost a
// race with a concurrent Migrate.
const sqliteMigrateAttempts = 5

// Migrate applies River's pending migrations to the database of cfg. It is
// idempotent and safe with concurrent callers: on PostgreSQL they are
// serialised with an advisory lock; on SQLite, where River's migrator has no
// lock, a caller that loses the race (e.g. "table river_migration already
// exists") rolls back and runs again until the schema is current.
func Migrate(ctx context.Context, cfg Config) error {
	if err := cfg.validateDatabase(); err != nil {
		return err
	}
	logger := cfg.logger()
	switch cfg.Dialect {
	case DialectSQLite:
		db, err := openSQLite(ctx, cfg.DSN)
		if err != nil {
			return err
		}
		defer db.Close()
		driver := newSQLiteDriver(db)
		for attempt := 1; attempt <= sqliteMigrateAttempts; attempt++ {
			if err = migrateUp(ctx, driver, logger); err == nil {
				return nil
			}
			logger.WarnContext(ctx, "jobs: river migration failed, retrying (a concurrent Migrate may be running)", "attempt", attempt, "error", err)
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		return err
	default:
		pool, err := openPostgres(ctx, cfg.DSN)
		if err != nil {
			return err
		}
		defer pool.Close()
		// The lock is held by a connection of its own for the whole run;
		// the migrator works on the pool's other connections.
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("jobs: migrate: acquire lock connection: %w", err)
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
			return fmt.Errorf("jobs: migrate: take advisory lock: %w", err)
		}
		// Unlock even if ctx is done; closing the session would release it too.
		defer func() {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey)
		}()
		return migrateUp(ctx, newPostgresDriver(pool), logger)
	}
}

func migrateUp[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], logger *slog.Logger) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	for _, v := range res.Versions {
		logger.InfoContext(ctx, "applied river migration", "version", v.Version, "name", v.Name, "duration", v.Duration)
	}
	return nil
}

// checkMigrated fails when River's schema is missing or behind.
func checkMigrated[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], logger *slog.Logger) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("jobs: check schema: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("jobs: check schema: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("jobs: river schema is not up to date (%s); run the migrations first (jobs.Migrate)", strings.Join(res.Messages, "; "))
	}
	return nil
}
