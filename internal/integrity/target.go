package integrity

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// target is one open database a run's checks query.
type target struct {
	engine  string
	db      *sql.DB
	mariadb bool
	secrets []string // strings scrubbed from error texts
}

// targets opens each database (or replica) once per run.
type targets struct {
	svc      *config.Service
	override map[string]string // database name -> URL (RunAgainst)
	open     map[string]*target
	errs     map[string]error
}

func newTargets(svc *config.Service, override map[string]string) *targets {
	return &targets{svc: svc, override: override, open: map[string]*target{}, errs: map[string]error{}}
}

func (ts *targets) close() {
	for _, t := range ts.open {
		t.db.Close()
	}
}

// get returns the database name, on its replica when replica is set.
func (ts *targets) get(ctx context.Context, name string, replica bool) (*target, error) {
	id := name
	if replica {
		id += "#replica"
	}
	if t, ok := ts.open[id]; ok {
		return t, nil
	}
	if err, ok := ts.errs[id]; ok {
		return nil, err
	}
	t, err := ts.dial(ctx, name, replica)
	if err != nil {
		ts.errs[id] = err
		return nil, err
	}
	ts.open[id] = t
	return t, nil
}

func (ts *targets) dial(ctx context.Context, name string, replica bool) (*target, error) {
	d := ts.svc.Database(name)
	if d == nil {
		return nil, fmt.Errorf("service %s has no database %q", ts.svc.Name, name)
	}
	raw, ok := ts.override[name]
	if !ok {
		ref := d.URL
		if replica {
			if d.ReplicaURL == "" {
				return nil, fmt.Errorf("database %s has no replica_url but the check sets replica: true", name)
			}
			ref = d.ReplicaURL
		}
		v, err := ref.Resolve()
		if err != nil {
			return nil, fmt.Errorf("database %s url: %w", name, err)
		}
		raw = v
	}
	t := &target{engine: d.Engine, secrets: secretsOf(raw)}
	db, err := dbx.Open(ctx, d.Engine, raw, true)
	if err != nil {
		return nil, fmt.Errorf("database %s: %s", name, t.scrub(err))
	}
	t.db = db
	if d.Engine == dbx.MySQL {
		var v string
		if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
			db.Close()
			return nil, fmt.Errorf("database %s: %s", name, t.scrub(err))
		}
		t.mariadb = strings.Contains(strings.ToLower(v), "mariadb")
	}
	return t, nil
}

// secretsOf returns the parts of a database URL that must not appear in
// messages: the URL itself and its password.
func secretsOf(raw string) []string {
	out := []string{raw}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p)
		}
	}
	// go-sql-driver DSN: user:password@tcp(…)/db
	if at := strings.LastIndex(raw, "@"); at > 0 && !strings.Contains(raw, "://") {
		if _, p, ok := strings.Cut(raw[:at], ":"); ok && p != "" {
			out = append(out, p)
		}
	}
	return out
}

// scrub returns the error text with the target's secrets replaced.
func (t *target) scrub(err error) string {
	msg := err.Error()
	for _, s := range t.secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}

// querier is what check queries run on: a read-only transaction, or for
// statements that cannot run in one (CHECK TABLE) a session.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// ctxFor bounds a unit of work: the server-side statement timeout fires
// first; the context deadline is the backstop (and the only timeout on
// SQLite).
func (t *target) ctxFor(ctx context.Context, timeout time.Duration, statements int) (context.Context, context.CancelFunc) {
	if t.engine == dbx.SQLite {
		return context.WithTimeout(ctx, timeout*time.Duration(max(statements, 1)))
	}
	return context.WithTimeout(ctx, timeout*time.Duration(max(statements, 1))+5*time.Second)
}

// session configures a connection's timeouts (MySQL/MariaDB: session
// variables; SQLite: query_only).
func (t *target) session(ctx context.Context, conn *sql.Conn, timeout time.Duration) error {
	switch t.engine {
	case dbx.MySQL:
		lock := max(int(timeout.Seconds()), 1)
		stmt := fmt.Sprintf("SET SESSION max_execution_time = %d, SESSION lock_wait_timeout = %d", timeout.Milliseconds(), lock)
		if t.mariadb {
			stmt = fmt.Sprintf("SET SESSION max_statement_time = %.3f, SESSION lock_wait_timeout = %d", timeout.Seconds(), lock)
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("set statement timeout: %w", err)
		}
		// DDL commits implicitly and would end a READ ONLY transaction; a
		// read-only session refuses it as well.
		if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION READ ONLY"); err != nil {
			return fmt.Errorf("set read-only session: %w", err)
		}
	case dbx.SQLite:
		if _, err := conn.ExecContext(ctx, "PRAGMA query_only = ON"); err != nil {
			return fmt.Errorf("set query_only: %w", err)
		}
	}
	return nil
}

// readOnly runs fn in a read-only, repeatable-read transaction whose
// statements time out after timeout; the transaction is always rolled back.
func (t *target) readOnly(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, q querier) error) error {
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if err := t.session(ctx, conn, timeout); err != nil {
		return err
	}
	var opts *sql.TxOptions
	if t.engine != dbx.SQLite {
		opts = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin read-only transaction: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	if t.engine == dbx.Postgres {
		ms := timeout.Milliseconds()
		for _, s := range []string{
			fmt.Sprintf("SET LOCAL statement_timeout = %d", ms),
			fmt.Sprintf("SET LOCAL lock_timeout = %d", ms),
			"SET LOCAL default_transaction_read_only = on",
		} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
	}
	return fn(ctx, tx)
}

// sessionOnly runs fn on a connection with the session timeouts but no
// transaction, for statements that commit implicitly (MySQL CHECK TABLE).
func (t *target) sessionOnly(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, q querier) error) error {
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if err := t.session(ctx, conn, timeout); err != nil {
		return err
	}
	return fn(ctx, conn)
}
