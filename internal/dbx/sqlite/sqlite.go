package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/internal/scratchdir"
	"github.com/stewardhq/steward/internal/dbx/internal/tool"
	"github.com/stewardhq/steward/internal/dbx/internal/value"
)

// Engine is the SQLite engine.
type Engine struct{}

var _ dbx.Engine = (*Engine)(nil)

// New returns the engine.
func New() *Engine { return &Engine{} }

// Name implements dbx.Engine.
func (e *Engine) Name() string { return "sqlite" }

const dumpFile = "database.sqlite"

// Path returns the file path of a SQLite URL: a plain path,
// sqlite:///abs/path.db or sqlite:relative/path.db.
func Path(raw string) (string, error) {
	p := raw
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		p = strings.TrimPrefix(raw, "sqlite://")
	case strings.HasPrefix(raw, "sqlite:"):
		p = strings.TrimPrefix(raw, "sqlite:")
	case strings.Contains(raw, "://"):
		return "", fmt.Errorf("invalid sqlite url %q: want a path or sqlite:///abs/path.db", raw)
	}
	if i := strings.IndexByte(p, '?'); i >= 0 && strings.HasPrefix(raw, "sqlite:") {
		p = p[:i]
	}
	if p == "" {
		return "", fmt.Errorf("invalid sqlite url %q: no file path", raw)
	}
	return filepath.Clean(p), nil
}

// dsn is a SQLite URI filename for path; mode is ro or rw.
func dsn(path, mode string) string {
	esc := strings.NewReplacer("%", "%25", "#", "%23", "?", "%3f").Replace(path)
	return "file:" + esc + "?mode=" + mode + "&_pragma=busy_timeout(10000)"
}

// open opens the database at path read-only (or read-write for Exec); the
// file must exist: opening never creates a database by accident.
func open(ctx context.Context, path, mode string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, mode))
	if err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	return db, nil
}

// ServerVersion implements dbx.Engine: the SQLite library version that
// reads the file (SQLite has no server).
func (e *Engine) ServerVersion(ctx context.Context, raw string) (string, error) {
	path, err := Path(raw)
	if err != nil {
		return "", err
	}
	db, err := open(ctx, path, "ro")
	if err != nil {
		return "", err
	}
	defer db.Close()
	return libVersion(ctx, db)
}

func libVersion(ctx context.Context, db *sql.DB) (string, error) {
	var v string
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v); err != nil {
		return "", fmt.Errorf("read sqlite version: %w", err)
	}
	return v, nil
}

func rowCounts(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
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
	for _, t := range tables {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(t, `"`, `""`)+`"`).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

// ErrNotOneValue is wrapped when a query does not return exactly one row
// with one column.
var ErrNotOneValue = errors.New("query must return one row with one column")

// queryValue renders the value; text that is entirely a timestamp in one of
// SQLite's date formats is rendered in RFC 3339 UTC like the other engines'
// time columns (SQLite stores times as text).
func queryValue(ctx context.Context, db *sql.DB, query string) (string, error) {
	rows, err := db.QueryContext(ctx, query)
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
		if s, ok := v.(string); ok {
			if t, ok := value.ParseSQLiteTime(s); ok {
				v = t
			}
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

// RowCounts implements dbx.Engine.
func (e *Engine) RowCounts(ctx context.Context, raw string) (map[string]int64, error) {
	path, err := Path(raw)
	if err != nil {
		return nil, err
	}
	db, err := open(ctx, path, "ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	counts, err := rowCounts(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("row counts of %s: %w", path, err)
	}
	return counts, nil
}

// QueryValue implements dbx.Engine. The database is opened read-only.
func (e *Engine) QueryValue(ctx context.Context, raw, query string) (string, error) {
	path, err := Path(raw)
	if err != nil {
		return "", err
	}
	db, err := open(ctx, path, "ro")
	if err != nil {
		return "", err
	}
	defer db.Close()
	return queryValue(ctx, db, query)
}

// Exec runs a script of SQL statements on the database at url (which must
// exist): heartbeat writes and test seeding.
func (e *Engine) Exec(ctx context.Context, raw, script string) error {
	path, err := Path(raw)
	if err != nil {
		return err
	}
	db, err := open(ctx, path, "rw")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, script); err != nil {
		return fmt.Errorf("exec on %s: %w", path, err)
	}
	return nil
}

// Dump implements dbx.Engine with VACUUM INTO on a read-only connection:
// the copy is one consistent snapshot even while the application writes,
// and the row counts and freshness are read from the copy itself
// (SameSnapshot). SnapshotTime is taken just before the statement starts,
// so it is never later than the snapshot.
func (e *Engine) Dump(ctx context.Context, raw, dir string, opts dbx.DumpOptions) (_ *dbx.Dump, err error) {
	if opts.Format != "" && opts.Format != "sqlite" {
		return nil, fmt.Errorf("sqlite dump format %q: only sqlite", opts.Format)
	}
	path, err := Path(raw)
	if err != nil {
		return nil, err
	}
	if err := tool.CheckEmptyDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tool.ClearDir(dir)
		}
	}()
	src, err := open(ctx, path, "ro")
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	defer src.Close()
	out := filepath.Join(dir, dumpFile)
	stmt := "VACUUM INTO '" + strings.ReplaceAll(out, "'", "''") + "'"
	stop := tool.WatchSize(out, opts.Progress)
	at := time.Now().UTC()
	_, err = src.ExecContext(ctx, stmt)
	stop()
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", path, err)
	}
	if err := syncFile(out); err != nil {
		return nil, fmt.Errorf("dump %s: %w", path, err)
	}
	cp, err := open(ctx, out, "ro")
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", path, err)
	}
	defer cp.Close()
	version, err := libVersion(ctx, cp)
	if err != nil {
		return nil, err
	}
	counts, err := rowCounts(ctx, cp)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", path, err)
	}
	var fresh string
	if opts.Freshness != "" {
		if fresh, err = queryValue(ctx, cp, opts.Freshness); err != nil {
			return nil, fmt.Errorf("dump %s: freshness: %w", path, err)
		}
	}
	return &dbx.Dump{
		Engine:        e.Name(),
		Format:        "sqlite",
		Files:         []string{dumpFile},
		SnapshotTime:  at,
		ServerVersion: version,
		ToolVersion:   "SQLite " + version + " (modernc.org/sqlite)",
		RowCounts:     counts,
		Freshness:     fresh,
		SameSnapshot:  true,
		// Run in process; this is the equivalent sqlite3 shell command.
		Commands: []string{"sqlite3 " + tool.Quote(path) + " " + tool.Quote(stmt)},
	}, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// checkFile makes sure path is a whole SQLite database: the header's page
// count times the page size must be the file size, which a truncated copy
// fails.
func checkFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("dump file: %w", err)
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("dump file %s is not a SQLite database: %w", path, err)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return 0, fmt.Errorf("dump file %s is not a SQLite database", path)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(h[28:32]))
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if want := pages * pageSize; pages == 0 || fi.Size() != want {
		return 0, fmt.Errorf("dump file %s is damaged: %d bytes, the header says %d pages of %d bytes (%d); truncated?", path, fi.Size(), pages, pageSize, want)
	}
	return fi.Size(), nil
}

// Restore implements dbx.Engine: it checks the copy is whole, and copies it
// to a temporary file beside the target, fsyncs it, renames it into place
// and fsyncs the directory. The target must not exist or be empty (0
// bytes).
func (e *Engine) Restore(ctx context.Context, d *dbx.Dump, dir, raw string, opts dbx.RestoreOptions) (*dbx.RestoreReport, error) {
	if d == nil || d.Engine != e.Name() || len(d.Files) != 1 {
		return nil, fmt.Errorf("restore: not a sqlite dump")
	}
	target, err := Path(raw)
	if err != nil {
		return nil, err
	}
	src := filepath.Join(dir, filepath.FromSlash(d.Files[0]))
	size, err := checkFile(src)
	if err != nil {
		return nil, fmt.Errorf("restore into %s: %w", target, err)
	}
	for _, p := range []string{target, target + "-wal", target + "-journal"} {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return nil, fmt.Errorf("restore into %s: %w (%s has %d bytes); restore into a new file", target, dbx.ErrNotEmpty, p, fi.Size())
		}
	}
	start := time.Now()
	if err := copyFile(ctx, src, target, opts.Progress); err != nil {
		return nil, fmt.Errorf("restore into %s: %w", target, err)
	}
	return &dbx.RestoreReport{
		Phases:      []dbx.Phase{{Name: "restore data", Duration: time.Since(start), Bytes: size}},
		Commands:    []string{"cp " + tool.Quote(src) + " " + tool.Quote(target) + " && sync"},
		ToolVersion: "steward (file copy)",
	}, nil
}

func copyFile(ctx context.Context, src, target string, progress func(int64)) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".restore-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	r := &tool.CountingReader{R: &ctxReader{ctx: ctx, r: in}, Progress: progress}
	if _, err := io.Copy(tmp, r); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	_ = os.Remove(target + "-shm")
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(target))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Scratch implements dbx.Engine. Kind "ephemeral" is an empty file in a new
// labelled directory under opts.Dir; SQLite has no server kind.
func (e *Engine) Scratch(ctx context.Context, opts dbx.ScratchOptions) (*dbx.Scratch, error) {
	if err := scratchdir.ValidateLabel(opts.Label, 200); err != nil {
		return nil, err
	}
	if opts.Kind != "ephemeral" {
		return nil, fmt.Errorf("sqlite scratch kind %q: SQLite has no server; use ephemeral", opts.Kind)
	}
	if opts.Dir == "" {
		return nil, errors.New("ephemeral sqlite scratch needs a directory (ScratchOptions.Dir)")
	}
	dir, err := scratchdir.Create(opts.Dir, opts.Dir, e.Name(), opts.Label)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, opts.Label+".db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("ephemeral sqlite: %w", err)
	}
	return dbx.NewScratch(path, opts.Label, "ephemeral SQLite file "+path, func(context.Context) error {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove ephemeral sqlite %s: %w", dir, err)
		}
		return nil
	}), nil
}

// Leftovers implements dbx.Engine: it removes the scratch directories under
// opts.Dir whose label starts with opts.Label, except those in keep.
func (e *Engine) Leftovers(ctx context.Context, opts dbx.ScratchOptions, keep map[string]bool) ([]string, error) {
	if opts.Label == "" {
		return nil, errors.New("leftovers: empty label prefix would match every scratch resource")
	}
	if opts.Dir == "" {
		return nil, nil
	}
	found, err := scratchdir.Find(opts.Dir, opts.Dir, e.Name(), opts.Label)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, f := range found {
		if keep[f.Label.Label] {
			continue
		}
		if err := scratchdir.Remove(f); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", f.Dir, err))
			continue
		}
		removed = append(removed, fmt.Sprintf("ephemeral sqlite %s (%s)", f.Label.Label, f.Dir))
	}
	return removed, errors.Join(errs...)
}

// Create creates an empty database file at path (an application's database
// before its first write); it fails when the file exists.
func Create(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create sqlite database: %w", err)
	}
	return f.Close()
}
