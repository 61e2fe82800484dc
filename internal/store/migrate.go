package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFS embed.FS

// Migration is one embedded schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations of a dialect in order.
func Migrations(dialect string) ([]Migration, error) {
	dir := "migrations/" + dialect
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", dialect, err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a version number", name)
		}
		body, err := fs.ReadFile(migrationFS, dir+"/"+name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// LatestVersion is the newest schema version this binary knows.
func LatestVersion() int {
	ms, err := Migrations(SQLite)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS steward_schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)`

// SchemaVersion returns the newest applied migration, 0 for an empty store.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var exists int
	var q string
	if s.dialect == Postgres {
		q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'steward_schema_migrations'"
	} else {
		q = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'steward_schema_migrations'"
	}
	if err := s.db.QueryRowContext(ctx, q).Scan(&exists); err != nil {
		return 0, s.classify(err)
	}
	if exists == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT max(version) FROM steward_schema_migrations").Scan(&v); err != nil {
		return 0, s.classify(err)
	}
	return int(v.Int64), nil
}

func (s *Store) refuseNewer(ctx context.Context) error {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if latest := LatestVersion(); v > latest {
		return &Error{Store: s.url, Err: fmt.Errorf("%w: schema version %d, this binary knows up to %d", ErrSchemaTooNew, v, latest),
			Hint: "run a newer steward binary against this store; do not downgrade"}
	}
	return nil
}

// Migrate applies pending migrations. Concurrent starters serialize on a lock:
// an advisory lock on PostgreSQL, the write lock (BEGIN IMMEDIATE) on SQLite.
// It refuses a store whose schema is newer than the binary.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := Migrations(s.dialect)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.classify(err)
	}
	defer conn.Close()
	if s.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7352001)"); err != nil {
			return s.classify(err)
		}
		defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(7352001)") //nolint:errcheck
	}
	tx, err := conn.BeginTx(ctx, nil) // immediate on SQLite (see DSN)
	if err != nil {
		return s.classify(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := tx.ExecContext(ctx, createVersionTable); err != nil {
		return s.classify(err)
	}
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT max(version) FROM steward_schema_migrations").Scan(&cur); err != nil {
		return s.classify(err)
	}
	latest := ms[len(ms)-1].Version
	if int(cur.Int64) > latest {
		return &Error{Store: s.url, Err: fmt.Errorf("%w: schema version %d, this binary knows up to %d", ErrSchemaTooNew, cur.Int64, latest),
			Hint: "run a newer steward binary against this store; do not downgrade"}
	}
	for _, m := range ms {
		if m.Version <= int(cur.Int64) {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("store %s: migration %s: %w", s.url, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, s.rebind("INSERT INTO steward_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
			m.Version, m.Name, FormatTime(time.Now())); err != nil {
			return fmt.Errorf("store %s: record migration %s: %w", s.url, m.Name, err)
		}
		s.log.Info("applied migration", "version", m.Version, "name", m.Name)
	}
	if err := tx.Commit(); err != nil {
		return s.classify(err)
	}
	return nil
}
