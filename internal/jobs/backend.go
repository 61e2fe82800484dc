package jobs

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// backend is a River client with its pool, whatever its transaction type
// (pgx.Tx on PostgreSQL, *sql.Tx on SQLite).
type backend interface {
	start(ctx context.Context) error
	stop(ctx context.Context) error
	stopAndCancel(ctx context.Context) error
	insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
	executor() riverdriver.Executor
	closePool() error
}

var (
	_ backend = (*riverBackend[*sql.Tx])(nil)
	_ backend = (*riverBackend[pgx.Tx])(nil)
)

// riverBackend implements backend for one River driver.
type riverBackend[TTx any] struct {
	client *river.Client[TTx]
	close  func() error
}

func (b *riverBackend[TTx]) start(ctx context.Context) error { return b.client.Start(ctx) }
func (b *riverBackend[TTx]) stop(ctx context.Context) error  { return b.client.Stop(ctx) }
func (b *riverBackend[TTx]) stopAndCancel(ctx context.Context) error {
	return b.client.StopAndCancel(ctx)
}

func (b *riverBackend[TTx]) insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return b.client.Insert(ctx, args, opts)
}

func (b *riverBackend[TTx]) subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return b.client.Subscribe(kinds...)
}

func (b *riverBackend[TTx]) executor() riverdriver.Executor { return b.client.Driver().GetExecutor() }
func (b *riverBackend[TTx]) closePool() error               { return b.close() }

func newBackend[TTx any](driver riverdriver.Driver[TTx], rc *river.Config, closePool func() error) (backend, error) {
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: new river client: %w", err)
	}
	return &riverBackend[TTx]{client: client, close: closePool}, nil
}

// openSQLite opens River's SQLite pool: one connection, as riversqlite
// requires to avoid SQLITE_BUSY between River's own goroutines.
func openSQLite(ctx context.Context, dsn string) (*sql.DB, error) {
	full, err := sqliteDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", full)
	if err != nil {
		return nil, fmt.Errorf("jobs: open sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("jobs: open sqlite: %w", err)
	}
	return db, nil
}

// openPostgres opens River's PostgreSQL pool.
func openPostgres(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("jobs: parse postgres url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("jobs: open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("jobs: open postgres: %w", err)
	}
	return pool, nil
}

func newSQLiteDriver(db *sql.DB) riverdriver.Driver[*sql.Tx] { return riversqlite.New(db) }
func newPostgresDriver(pool *pgxpool.Pool) riverdriver.Driver[pgx.Tx] {
	return riverpgxv5.New(pool)
}
