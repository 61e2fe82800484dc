package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/internal/tool"
	"github.com/stewardhq/steward/internal/dbx/internal/value"
)

// Engine is the PostgreSQL engine.
type Engine struct {
	// BinDir holds pg_dump, pg_restore, initdb, pg_ctl and pg_amcheck.
	// Empty: the newest /usr/lib/postgresql/*/bin, then PATH.
	BinDir string
	// RunAs is the OS user that runs initdb and the ephemeral server when
	// Steward runs as root (PostgreSQL refuses root). Default "postgres".
	RunAs string

	// serverLogs maps the host:port of each running ephemeral server to its
	// log file, so that a restore that loses its server can say why.
	serverLogs sync.Map
}

var _ dbx.Engine = (*Engine)(nil)

// New returns the engine with default settings.
func New() *Engine { return &Engine{} }

// Name implements dbx.Engine.
func (e *Engine) Name() string { return "postgres" }

const customFile = "database.dump"
const directoryDir = "database.d"

// target is a parsed database URL.
type target struct {
	conn    string // full URL, for pgx
	tool    string // URL without the password, for command lines
	pw      string // password, passed to tools in PGPASSWORD
	display string // for messages: no password
	db      string
	u       *url.URL
}

func parseURL(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return target{}, fmt.Errorf("invalid postgres url %q: want postgres://user@host:port/db", redactRaw(raw))
	}
	t := target{conn: raw, u: u}
	tu := *u
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			t.pw = pw
		}
		tu.User = url.User(u.User.Username())
	}
	q := tu.Query()
	if pw := q.Get("password"); pw != "" {
		t.pw = pw
		q.Del("password")
		tu.RawQuery = q.Encode()
	}
	t.tool = tu.String()
	t.db = strings.TrimPrefix(u.Path, "/")
	d := tu
	d.RawQuery = ""
	t.display = d.String()
	return t, nil
}

// redactRaw hides a password in a URL we could not parse.
func redactRaw(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparseable url)"
}

func (t target) env() []string {
	if t.pw == "" {
		return nil
	}
	return []string{"PGPASSWORD=" + t.pw}
}

func connect(ctx context.Context, t target) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(t.conn)
	if err != nil {
		return nil, fmt.Errorf("postgres database %s: %w", t.display, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres database %s: %w", t.display, err)
	}
	return c, nil
}

// bin finds a PostgreSQL program, preferring the newest installed major
// version: a newer pg_dump reads older servers, never the reverse.
func (e *Engine) bin(name string) (string, error) {
	dirs := []string{e.BinDir}
	if e.BinDir == "" {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(matches, func(i, j int) bool { return major(matches[i]) > major(matches[j]) })
		dirs = matches
	}
	p, err := tool.Find(dirs, name)
	if err != nil {
		return "", fmt.Errorf("postgres: %w; install the PostgreSQL client/server packages or set the engine's BinDir", err)
	}
	return p, nil
}

func major(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// ServerVersion implements dbx.Engine.
func (e *Engine) ServerVersion(ctx context.Context, rawURL string) (string, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	c, err := connect(ctx, t)
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return serverVersion(ctx, c)
}

func serverVersion(ctx context.Context, c *pgx.Conn) (string, error) {
	var v string
	if err := c.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", fmt.Errorf("read server version: %w", err)
	}
	return v, nil
}

// queryer is a connection or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// userTables lists the tables pg_dump dumps the rows of: ordinary and
// partitioned tables outside the system schemas, not temporary, not owned by
// an extension.
const userTables = `
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`

// rowCounts counts the rows of every user table exactly; keys are
// schema.table.
func rowCounts(ctx context.Context, q queryer) (map[string]int64, error) {
	rows, err := q.Query(ctx, userTables)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables [][2]string
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, [2]string{s, n})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	counts := make(map[string]int64, len(tables))
	for _, tb := range tables {
		var n int64
		if err := q.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tb[0], tb[1]}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s.%s: %w", tb[0], tb[1], err)
		}
		counts[tb[0]+"."+tb[1]] = n
	}
	return counts, nil
}

// timeOIDs are returned in binary and rendered as RFC 3339; every other
// type comes back in PostgreSQL's own text form.
var resultFormats = pgx.QueryResultFormatsByOID{
	pgtype.TimestamptzOID: pgx.BinaryFormatCode,
	pgtype.TimestampOID:   pgx.BinaryFormatCode,
	pgtype.DateOID:        pgx.BinaryFormatCode,
	pgtype.BoolOID:        pgx.BinaryFormatCode,
}

// ErrNotOneValue is wrapped when a query does not return exactly one row
// with one column.
var ErrNotOneValue = errors.New("query must return one row with one column")

func queryValue(ctx context.Context, q queryer, query string) (string, error) {
	rows, err := q.Query(ctx, query, resultFormats)
	if err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	defer rows.Close()
	var out string
	n := 0
	for rows.Next() {
		n++
		if n > 1 {
			return "", fmt.Errorf("query %q: %w: it returns more than one row", query, ErrNotOneValue)
		}
		if f := rows.FieldDescriptions(); len(f) != 1 {
			return "", fmt.Errorf("query %q: %w: it returns %d columns", query, ErrNotOneValue, len(f))
		}
		raw := rows.RawValues()[0]
		switch rows.FieldDescriptions()[0].DataTypeOID {
		case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID, pgtype.BoolOID:
			vals, err := rows.Values()
			if err != nil {
				return "", fmt.Errorf("query %q: %w", query, err)
			}
			out = value.Format(vals[0])
		default:
			if raw != nil {
				out = string(raw)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("query %q: %w", query, err)
	}
	if n == 0 {
		return "", fmt.Errorf("query %q: %w: it returns no rows", query, ErrNotOneValue)
	}
	return out, nil
}

// RowCounts implements dbx.Engine: exact counts of every user table, read
// in one snapshot, keyed schema.table.
func (e *Engine) RowCounts(ctx context.Context, rawURL string) (map[string]int64, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, t)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("row counts of %s: %w", t.display, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	counts, err := rowCounts(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("row counts of %s: %w", t.display, err)
	}
	return counts, nil
}

// QueryValue implements dbx.Engine. The query runs in a read-only
// transaction.
func (e *Engine) QueryValue(ctx context.Context, rawURL, query string) (string, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	c, err := connect(ctx, t)
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return "", fmt.Errorf("query on %s: %w", t.display, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return queryValue(ctx, tx, query)
}

// Exec runs a script of SQL statements (simple protocol, one implicit
// transaction) on the database at url: heartbeat writes and test seeding.
func (e *Engine) Exec(ctx context.Context, rawURL, script string) error {
	t, err := parseURL(rawURL)
	if err != nil {
		return err
	}
	c, err := connect(ctx, t)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, script); err != nil {
		return fmt.Errorf("exec on %s: %w", t.display, err)
	}
	return nil
}

// Dump implements dbx.Engine. It opens a REPEATABLE READ transaction,
// exports its snapshot, reads the row counts, the freshness value and now()
// in it, and runs pg_dump --snapshot while the transaction stays open: the
// dump, the counts and the freshness all see the same data (SameSnapshot).
func (e *Engine) Dump(ctx context.Context, rawURL, dir string, opts dbx.DumpOptions) (_ *dbx.Dump, err error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	format := opts.Format
	if format == "" {
		format = "custom"
	}
	if format != "custom" && format != "directory" {
		return nil, fmt.Errorf("postgres dump format %q: want custom or directory", format)
	}
	if err := tool.CheckEmptyDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tool.ClearDir(dir)
		}
	}()
	pgDump, err := e.bin("pg_dump")
	if err != nil {
		return nil, err
	}
	toolVersion, err := tool.Version(ctx, pgDump)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	sv, err := serverVersion(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", t.display, err)
	}
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("dump %s: begin snapshot: %w", t.display, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var snapshot string
	var at time.Time
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot(), now()").Scan(&snapshot, &at); err != nil {
		return nil, fmt.Errorf("dump %s: export snapshot: %w", t.display, err)
	}
	counts, err := rowCounts(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", t.display, err)
	}
	var fresh string
	if opts.Freshness != "" {
		if fresh, err = queryValue(ctx, tx, opts.Freshness); err != nil {
			return nil, fmt.Errorf("dump %s: freshness: %w", t.display, err)
		}
	}

	out := filepath.Join(dir, customFile)
	args := []string{"--format=" + format, "--snapshot=" + snapshot, "--no-password"}
	if format == "directory" {
		out = filepath.Join(dir, directoryDir)
		args = append(args, "--jobs="+strconv.Itoa(max(opts.Jobs, 1)))
	}
	args = append(args, "--file="+out, "--dbname="+t.tool)
	cmd := &tool.Cmd{Path: pgDump, Args: args, Env: t.env()}
	stop := tool.WatchSize(out, opts.Progress)
	_, err = cmd.Run(ctx)
	stop()
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", t.display, err)
	}
	files, err := tool.Files(dir, out)
	if err != nil {
		return nil, fmt.Errorf("dump %s: list files: %w", t.display, err)
	}
	return &dbx.Dump{
		Engine:        e.Name(),
		Format:        format,
		Files:         files,
		SnapshotTime:  at.UTC(),
		ServerVersion: sv,
		ToolVersion:   toolVersion,
		RowCounts:     counts,
		Freshness:     fresh,
		SameSnapshot:  true,
		Commands:      []string{cmd.String()},
	}, nil
}

// Restore implements dbx.Engine: pg_restore -j into an empty database,
// pre-data and data as "restore data", post-data (indexes, constraints,
// triggers) as "build indexes/constraints". Ownership and grants are not
// restored (--no-owner --no-privileges): the restored objects belong to the
// connecting user, so a scratch server needs none of the source's roles.
// The first error stops the restore (--exit-on-error).
func (e *Engine) Restore(ctx context.Context, d *dbx.Dump, dir, rawURL string, opts dbx.RestoreOptions) (*dbx.RestoreReport, error) {
	if d == nil || d.Engine != e.Name() {
		return nil, fmt.Errorf("restore: not a postgres dump")
	}
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	src, size, err := dumpSource(d, dir)
	if err != nil {
		return nil, fmt.Errorf("restore into %s: %w", t.display, err)
	}
	if err := checkEmpty(ctx, t); err != nil {
		return nil, err
	}
	pgRestore, err := e.bin("pg_restore")
	if err != nil {
		return nil, err
	}
	toolVersion, err := tool.Version(ctx, pgRestore)
	if err != nil {
		return nil, err
	}
	rep := &dbx.RestoreReport{ToolVersion: toolVersion}
	jobs := strconv.Itoa(max(opts.Jobs, 1))
	for _, ph := range []struct {
		name     string
		sections []string
		bytes    int64
	}{
		{"restore data", []string{"--section=pre-data", "--section=data"}, size},
		{"build indexes/constraints", []string{"--section=post-data"}, 0},
	} {
		args := append(ph.sections, "--jobs="+jobs, "--exit-on-error", "--no-owner", "--no-privileges",
			"--no-password", "--dbname="+t.tool, src)
		cmd := &tool.Cmd{Path: pgRestore, Args: args, Env: t.env()}
		rep.Commands = append(rep.Commands, cmd.String())
		start := time.Now()
		if _, err := cmd.Run(ctx); err != nil {
			return rep, fmt.Errorf("restore into %s: %s: %w%s", t.display, ph.name, err, e.serverProblems(t))
		}
		rep.Phases = append(rep.Phases, dbx.Phase{Name: ph.name, Duration: time.Since(start), Bytes: ph.bytes})
		if ph.bytes > 0 && opts.Progress != nil {
			opts.Progress(ph.bytes)
		}
	}
	return rep, nil
}

// dumpSource returns what pg_restore reads (the custom file or the
// directory) and the dump's size, checking every listed file is there.
func dumpSource(d *dbx.Dump, dir string) (string, int64, error) {
	if len(d.Files) == 0 {
		return "", 0, errors.New("dump lists no files")
	}
	var size int64
	for _, f := range d.Files {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return "", 0, fmt.Errorf("dump file: %w", err)
		}
		size += fi.Size()
	}
	switch d.Format {
	case "custom":
		if len(d.Files) != 1 {
			return "", 0, fmt.Errorf("custom-format dump lists %d files, want 1", len(d.Files))
		}
		return filepath.Join(dir, filepath.FromSlash(d.Files[0])), size, nil
	case "directory":
		top, _, _ := strings.Cut(d.Files[0], "/")
		src := filepath.Join(dir, top)
		if _, err := os.Stat(filepath.Join(src, "toc.dat")); err != nil {
			return "", 0, fmt.Errorf("directory-format dump: %w", err)
		}
		return src, size, nil
	default:
		return "", 0, fmt.Errorf("postgres dump format %q: want custom or directory", d.Format)
	}
}

// checkEmpty refuses a target that already has relations in user schemas.
func checkEmpty(ctx context.Context, t target) error {
	c, err := connect(ctx, t)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	var n int
	err = c.QueryRow(ctx, `
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`).Scan(&n)
	if err != nil {
		return fmt.Errorf("restore into %s: check it is empty: %w", t.display, err)
	}
	if n > 0 {
		return fmt.Errorf("restore into %s: %w (%d relations); restore into a new database", t.display, dbx.ErrNotEmpty, n)
	}
	return nil
}

// Amcheck runs pg_amcheck --heapallindexed on the database at url and
// returns its output; corruption (or a failure to check) is an error that
// carries the output. Missing amcheck extensions are installed
// (--install-missing), so run it on restored copies, not on production.
func (e *Engine) Amcheck(ctx context.Context, rawURL string) (string, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	bin, err := e.bin("pg_amcheck")
	if err != nil {
		return "", err
	}
	cmd := &tool.Cmd{Path: bin, Args: []string{"--heapallindexed", "--install-missing", "--no-password", t.tool}, Env: t.env()}
	out, err := cmd.Run(ctx)
	if err != nil {
		return string(out), fmt.Errorf("amcheck %s: %w", t.display, err)
	}
	return string(out), nil
}

// Bin returns the path of the PostgreSQL program name the engine would run.
func (e *Engine) Bin(name string) (string, error) { return e.bin(name) }
