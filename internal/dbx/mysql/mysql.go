package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/internal/tool"
	"github.com/stewardhq/steward/internal/dbx/internal/value"
)

// Engine is the MySQL/MariaDB engine.
type Engine struct {
	// BinDir holds mariadb-dump, mariadb, mariadb-install-db and mariadbd
	// (or their mysql names). Empty: PATH, then /usr/sbin for the server.
	BinDir string

	serverLogs sync.Map // address of an ephemeral server we run → its error log
}

var _ dbx.Engine = (*Engine)(nil)

// New returns the engine with default settings.
func New() *Engine { return &Engine{} }

// Name implements dbx.Engine.
func (e *Engine) Name() string { return "mysql" }

const dumpFile = "database.sql"

// trailer ends every complete mariadb-dump/mysqldump output.
const trailer = "-- Dump completed"

// ParseURL accepts a go-sql-driver DSN (user:pass@tcp(host:port)/db) or a
// URL (mysql://user:pass@host:port/db, mariadb://…) and returns the driver
// configuration.
func ParseURL(raw string) (*mysql.Config, error) {
	if strings.HasPrefix(raw, "mysql://") || strings.HasPrefix(raw, "mariadb://") {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid mysql url: %w", err)
		}
		host := u.Host
		if u.Port() == "" {
			host += ":3306"
		}
		dsn := "tcp(" + host + ")/" + strings.TrimPrefix(u.Path, "/")
		if u.RawQuery != "" {
			dsn += "?" + u.RawQuery
		}
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, fmt.Errorf("invalid mysql url %s: %w", u.Redacted(), err)
		}
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		return cfg, nil
	}
	cfg, err := mysql.ParseDSN(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid mysql dsn: %w (want user:pass@tcp(host:port)/db or mysql://user:pass@host:port/db)", err)
	}
	return cfg, nil
}

// display names the database without the password.
func display(cfg *mysql.Config) string {
	return fmt.Sprintf("%s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName)
}

// open connects with the settings Steward relies on: times parsed, in UTC
// (the session time zone too, so TIMESTAMP columns read as UTC; DATETIME
// values, which carry no zone, are taken as UTC).
func open(ctx context.Context, raw string, multi bool) (*sql.DB, *mysql.Config, error) {
	cfg, err := ParseURL(raw)
	if err != nil {
		return nil, nil, err
	}
	c := cfg.Clone()
	c.ParseTime = true
	c.Loc = time.UTC
	c.MultiStatements = multi
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["time_zone"] = "'+00:00'"
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, nil, fmt.Errorf("mysql database %s: %w", display(cfg), err)
	}
	db := sql.OpenDB(conn)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("connect to mysql database %s: %w", display(cfg), err)
	}
	return db, cfg, nil
}

func (e *Engine) bin(names ...string) (string, error) {
	p, err := tool.Find([]string{e.BinDir, "/usr/bin", "/usr/sbin", "/usr/local/mysql/bin"}, names...)
	if err != nil {
		return "", fmt.Errorf("mysql: %w; install the MariaDB/MySQL client and server packages or set the engine's BinDir", err)
	}
	return p, nil
}

// clientArgs are the connection flags of the command-line tools; the
// password goes in MYSQL_PWD.
func clientArgs(cfg *mysql.Config) ([]string, []string) {
	var args []string
	if cfg.Net == "unix" {
		args = append(args, "--protocol=SOCKET", "--socket="+cfg.Addr)
	} else {
		host, port, _ := strings.Cut(cfg.Addr, ":")
		if port == "" {
			port = "3306"
		}
		args = append(args, "--protocol=TCP", "--host="+host, "--port="+port)
	}
	if cfg.User != "" {
		args = append(args, "--user="+cfg.User)
	}
	var env []string
	if cfg.Passwd != "" {
		env = append(env, "MYSQL_PWD="+cfg.Passwd)
	}
	return args, env
}

// ServerVersion implements dbx.Engine.
func (e *Engine) ServerVersion(ctx context.Context, raw string) (string, error) {
	db, _, err := open(ctx, raw, false)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", fmt.Errorf("read server version: %w", err)
	}
	return v, nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowCounts counts the rows of every base table of the current database.
func rowCounts(ctx context.Context, q queryer) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	counts := make(map[string]int64, len(tables))
	for _, tb := range tables {
		var n int64
		if err := q.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(tb)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", tb, err)
		}
		counts[tb] = n
	}
	return counts, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// ErrNotOneValue is wrapped when a query does not return exactly one row
// with one column.
var ErrNotOneValue = errors.New("query must return one row with one column")

func queryValue(ctx context.Context, q queryer, query string) (string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	if len(cols) != 1 {
		return "", fmt.Errorf("query %q: %w: it returns %d columns", query, ErrNotOneValue, len(cols))
	}
	var out string
	n := 0
	for rows.Next() {
		n++
		if n > 1 {
			return "", fmt.Errorf("query %q: %w: it returns more than one row", query, ErrNotOneValue)
		}
		var v any
		if err := rows.Scan(&v); err != nil {
			return "", fmt.Errorf("query %q: %w", query, err)
		}
		out = value.Format(v)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	if n == 0 {
		return "", fmt.Errorf("query %q: %w: it returns no rows", query, ErrNotOneValue)
	}
	return out, nil
}

// RowCounts implements dbx.Engine: exact counts of every base table, read
// in one consistent snapshot.
func (e *Engine) RowCounts(ctx context.Context, raw string) (map[string]int64, error) {
	db, cfg, err := open(ctx, raw, false)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("row counts of %s: %w", display(cfg), err)
	}
	defer func() { _ = tx.Rollback() }()
	counts, err := rowCounts(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("row counts of %s: %w", display(cfg), err)
	}
	return counts, nil
}

// QueryValue implements dbx.Engine. The query runs in a read-only
// transaction.
func (e *Engine) QueryValue(ctx context.Context, raw, query string) (string, error) {
	db, cfg, err := open(ctx, raw, false)
	if err != nil {
		return "", err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return "", fmt.Errorf("query on %s: %w", display(cfg), err)
	}
	defer func() { _ = tx.Rollback() }()
	return queryValue(ctx, tx, query)
}

// Exec runs a script of SQL statements on the database at url: heartbeat
// writes and test seeding.
func (e *Engine) Exec(ctx context.Context, raw, script string) error {
	db, cfg, err := open(ctx, raw, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, script); err != nil {
		return fmt.Errorf("exec on %s: %w", display(cfg), err)
	}
	return nil
}

// Dump implements dbx.Engine. See the package documentation for why
// SameSnapshot is false.
func (e *Engine) Dump(ctx context.Context, raw, dir string, opts dbx.DumpOptions) (_ *dbx.Dump, err error) {
	if opts.Format != "" && opts.Format != "sql" {
		return nil, fmt.Errorf("mysql dump format %q: only sql", opts.Format)
	}
	if err := tool.CheckEmptyDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tool.ClearDir(dir)
		}
	}()
	bin, err := e.bin("mariadb-dump", "mysqldump")
	if err != nil {
		return nil, err
	}
	toolVersion, err := tool.Version(ctx, bin)
	if err != nil {
		return nil, err
	}
	db, cfg, err := open(ctx, raw, false)
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	defer db.Close()
	name := display(cfg)

	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", name, err)
	}
	defer conn.Close()
	var sv string
	var at time.Time
	var counts map[string]int64
	var fresh string
	err = func() error {
		if err := conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&sv); err != nil {
			return fmt.Errorf("read server version: %w", err)
		}
		if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
			return fmt.Errorf("start snapshot: %w", err)
		}
		defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") }()
		if err := conn.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&at); err != nil {
			return fmt.Errorf("read snapshot time: %w", err)
		}
		var err error
		if counts, err = rowCounts(ctx, conn); err != nil {
			return err
		}
		if opts.Freshness != "" {
			if fresh, err = queryValue(ctx, conn, opts.Freshness); err != nil {
				return fmt.Errorf("freshness: %w", err)
			}
		}
		return nil
	}()
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", name, err)
	}

	out := filepath.Join(dir, dumpFile)
	args, env := clientArgs(cfg)
	args = append(args, "--single-transaction", "--routines", "--triggers", "--hex-blob",
		"--no-tablespaces", "--default-character-set=utf8mb4", "--result-file="+out, cfg.DBName)
	cmd := &tool.Cmd{Path: bin, Args: args, Env: env}
	stop := tool.WatchSize(out, opts.Progress)
	_, err = cmd.Run(ctx)
	stop()
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", name, err)
	}
	if err := checkComplete(out); err != nil {
		return nil, fmt.Errorf("dump %s: %w", name, err)
	}
	return &dbx.Dump{
		Engine:        e.Name(),
		Format:        "sql",
		Files:         []string{dumpFile},
		SnapshotTime:  at.UTC(),
		ServerVersion: sv,
		ToolVersion:   toolVersion,
		RowCounts:     counts,
		Freshness:     fresh,
		SameSnapshot:  false,
		Commands:      []string{cmd.String()},
	}, nil
}

// checkComplete makes sure a dump file ends with the dump tool's trailer: a
// file cut at a statement boundary would otherwise restore "successfully"
// with tables missing.
func checkComplete(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("dump file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	tail := make([]byte, min(fi.Size(), 512))
	if _, err := f.ReadAt(tail, fi.Size()-int64(len(tail))); err != nil && err != io.EOF {
		return fmt.Errorf("dump file: %w", err)
	}
	if !strings.Contains(string(tail), trailer) {
		return fmt.Errorf("dump file %s is incomplete: it does not end with %q (truncated, or not written by mariadb-dump/mysqldump)", path, trailer+" on …")
	}
	return nil
}

// Restore implements dbx.Engine: it checks the dump is complete and the
// target empty, then streams the file into the mariadb client, which stops
// at the first error. Tables, indexes and constraints are built together, so
// there is one phase, "restore data".
func (e *Engine) Restore(ctx context.Context, d *dbx.Dump, dir, raw string, opts dbx.RestoreOptions) (*dbx.RestoreReport, error) {
	if d == nil || d.Engine != e.Name() || len(d.Files) != 1 {
		return nil, fmt.Errorf("restore: not a mysql dump")
	}
	cfg, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	name := display(cfg)
	path := filepath.Join(dir, filepath.FromSlash(d.Files[0]))
	if err := checkComplete(path); err != nil {
		return nil, fmt.Errorf("restore into %s: %w", name, err)
	}
	if err := checkEmpty(ctx, raw); err != nil {
		return nil, err
	}
	bin, err := e.bin("mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	toolVersion, err := tool.Version(ctx, bin)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("restore into %s: %w", name, err)
	}
	defer f.Close()
	args, env := clientArgs(cfg)
	args = append(args, "--batch", "--binary-mode", "--default-character-set=utf8mb4", "--database="+cfg.DBName)
	in := &tool.CountingReader{R: f, Progress: opts.Progress}
	cmd := &tool.Cmd{Path: bin, Args: args, Env: env, Stdin: in, StdinName: path}
	rep := &dbx.RestoreReport{ToolVersion: toolVersion, Commands: []string{cmd.String()}}
	start := time.Now()
	if out, err := cmd.Run(ctx); err != nil {
		return rep, fmt.Errorf("restore into %s: restore data: %w%s", name, clientError(ctx, bin, out, err), e.serverProblems(cfg.Addr))
	}
	rep.Phases = []dbx.Phase{{Name: "restore data", Duration: time.Since(start), Bytes: in.N()}}
	return rep, nil
}

// clientErrorLine is the line the mariadb/mysql client prints for the
// statement that failed, e.g. "ERROR 1114 (HY000) at line 40: The table
// 'events' is full".
var clientErrorLine = regexp.MustCompile(`(?m)^ERROR (\d+) \([0-9A-Z]+\)(?: at line \d+)?: .*$`)

// clientError words a failed restore by the client's ERROR line rather than
// the end of its output, which in batch mode echoes the failing statement
// (kilobytes of an extended INSERT). A full disk is said so: InnoDB reports
// it as error 1114 "The table '…' is full" (errno 28 is only in the
// server's error log); MyISAM, Aria and temporary files as errno 28.
func clientError(ctx context.Context, bin string, out []byte, err error) error {
	m := clientErrorLine.FindSubmatch(out)
	if ctx.Err() != nil || m == nil {
		return err
	}
	msg := string(bytes.TrimSpace(m[0]))
	code, _ := strconv.Atoi(string(m[1]))
	switch {
	case code == erRecordFileFull:
		return fmt.Errorf("out of disk space: %s — InnoDB's report of no space left on device (errno 28) where the server keeps its data (or of a MEMORY table at max_heap_table_size); free space there or restore onto a bigger disk", msg)
	case strings.Contains(msg, "Errcode: 28") || strings.Contains(msg, "error 28") || strings.Contains(strings.ToLower(msg), "no space left on device"):
		return fmt.Errorf("out of disk space: %s; free space where the server keeps its data or restore onto a bigger disk", msg)
	}
	cause := errors.Unwrap(err)
	if cause == nil {
		cause = err
	}
	return fmt.Errorf("%s: %w: %s", filepath.Base(bin), cause, msg)
}

// erRecordFileFull is ER_RECORD_FILE_FULL, "The table '%s' is full".
const erRecordFileFull = 1114

func checkEmpty(ctx context.Context, raw string) error {
	db, cfg, err := open(ctx, raw, false)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n); err != nil {
		return fmt.Errorf("restore into %s: check it is empty: %w", display(cfg), err)
	}
	if n > 0 {
		return fmt.Errorf("restore into %s: %w (%d tables and views); restore into a new database", display(cfg), dbx.ErrNotEmpty, n)
	}
	return nil
}
