package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Dialects of the state database.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrSchemaTooNew  = errors.New("store schema is newer than this binary")
	ErrUnreachable   = errors.New("store unreachable")
	ErrCorrupt       = errors.New("store file is not a valid SQLite database")
	ErrBadStoreURL   = errors.New("bad store URL")
	ErrAuditConflict = errors.New("audit chain head moved during append")
)

// Error is a store error with the store it concerns and a hint for the user.
type Error struct {
	Store string // the store URL, redacted
	Err   error
	Hint  string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("store %s: %v", e.Store, e.Err)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Store is an open state database.
type Store struct {
	db      *sql.DB
	dialect string
	url     string // redacted, for messages
	dsn     string // driver DSN, for other pools on the same database (jobs)
	path    string // sqlite file path
	log     *slog.Logger
}

// Options tune Open.
type Options struct {
	// NoMigrate opens the store without applying migrations; it still refuses
	// a schema newer than the binary.
	NoMigrate bool
	Logger    *slog.Logger
}

// ParseURL returns the dialect, the driver DSN and, for SQLite, the file path
// of a store URL: sqlite:///abs/path.db, sqlite://rel/path.db, a bare path
// ending in .db, or postgres://… / postgresql://….
func ParseURL(raw string) (dialect, dsn, path string, err error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", "", fmt.Errorf("%w %q: %v", ErrBadStoreURL, redact(raw), err)
		}
		return Postgres, raw, "", nil
	case strings.HasPrefix(raw, "sqlite://"):
		path = strings.TrimPrefix(raw, "sqlite://")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
	case strings.Contains(raw, "://") || raw == "":
		return "", "", "", fmt.Errorf("%w %q: use sqlite:///path/steward.db or postgres://user@host/db", ErrBadStoreURL, redact(raw))
	default:
		path = raw
	}
	if path == "" {
		return "", "", "", fmt.Errorf("%w %q: missing file path", ErrBadStoreURL, raw)
	}
	// The DSN is a SQLite URI filename: escape what it would cut at.
	esc := strings.NewReplacer("%", "%25", "#", "%23", "?", "%3f").Replace(path)
	dsn = "file:" + esc + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	return SQLite, dsn, path, nil
}

// Open opens the store at rawURL, checks it is reachable and readable, and
// applies pending migrations under a lock.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	dialect, dsn, path, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &Store{dialect: dialect, dsn: dsn, path: path, url: redact(rawURL), log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch dialect {
	case SQLite:
		if dir := filepath.Dir(path); dir != "" {
			if _, err := os.Stat(dir); err != nil {
				return nil, &Error{Store: s.url, Err: fmt.Errorf("%w: directory %s: %v", ErrUnreachable, dir, err), Hint: "create the directory or choose another --store"}
			}
		}
		s.db, err = sql.Open("sqlite", dsn)
		if err != nil {
			return nil, &Error{Store: s.url, Err: err}
		}
		s.db.SetMaxOpenConns(8)
		s.db.SetMaxIdleConns(8)
	case Postgres:
		s.db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, &Error{Store: s.url, Err: err}
		}
		s.db.SetMaxOpenConns(16)
		s.db.SetMaxIdleConns(16)
		s.db.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := s.check(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if !opts.NoMigrate {
		if err := s.Migrate(ctx); err != nil {
			s.db.Close()
			return nil, err
		}
	} else if err := s.refuseNewer(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// check pings the database and, for SQLite, reads the schema so a corrupted
// file is reported now rather than at the first query.
func (s *Store) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return s.classify(err)
	}
	if s.dialect == SQLite {
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
			return s.classify(err)
		}
	}
	return nil
}

func (s *Store) classify(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "file is not a database"), strings.Contains(msg, "malformed"), strings.Contains(msg, "SQLITE_NOTADB"), strings.Contains(msg, "SQLITE_CORRUPT"):
		return &Error{Store: s.url, Err: fmt.Errorf("%w (%v)", ErrCorrupt, err), Hint: "restore the file from a backup, or move it aside to start with an empty store"}
	case s.dialect == Postgres:
		return &Error{Store: s.url, Err: fmt.Errorf("%w: %v", ErrUnreachable, err), Hint: "check that PostgreSQL is running and that the URL, user and database are right"}
	default:
		return &Error{Store: s.url, Err: fmt.Errorf("%w: %v", ErrUnreachable, err), Hint: "check the path and its permissions"}
	}
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the pool for packages that own their own tables and for tests.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect is SQLite or Postgres.
func (s *Store) Dialect() string { return s.dialect }

// DriverDSN is the DSN another pool on the same database should use (River).
func (s *Store) DriverDSN() string { return s.dsn }

// URL is the store URL with any password redacted.
func (s *Store) URL() string { return s.url }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return s.classify(err)
	}
	return nil
}

// rebind turns ? placeholders into $1, $2, … for PostgreSQL.
func (s *Store) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.rebind(q), args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.rebind(q), args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.rebind(q), args...)
}

func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "SQLSTATE 23505") || strings.Contains(m, "duplicate key")
}

// timeFormat is fixed-width so that text order is time order in both dialects.
const timeFormat = "2006-01-02T15:04:05.000000Z"

// FormatTime renders t the way the store keeps times: UTC, microseconds.
func FormatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// ParseTime parses a time written by FormatTime.
func ParseTime(v string) (time.Time, error) { return time.Parse(timeFormat, v) }

func nullTime(v sql.NullString) *time.Time {
	if !v.Valid || v.String == "" {
		return nil
	}
	t, err := ParseTime(v.String)
	if err != nil {
		return nil
	}
	return &t
}

func timePtrString(t *time.Time) any {
	if t == nil {
		return nil
	}
	return FormatTime(*t)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw
	}
	return u.Redacted()
}
