package integrity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// ErrNoAmcheck means the amcheck extension is not installed in the
// database; checks are read-only and do not install it.
var ErrNoAmcheck = errors.New("the amcheck extension is not installed in this database: run CREATE EXTENSION amcheck as a superuser")

// runAmcheck verifies the B-tree indexes (bt_index_check with
// heapallindexed) and, where amcheck has it, the heap (verify_heapam) of the
// check's table, or of every user table when none is set. Corruption
// reported by amcheck is a violation; any other failure an error.
func runAmcheck(ctx context.Context, log *slog.Logger, t *target, c *config.Check, r *Result, timeout time.Duration) {
	if t.engine != dbx.Postgres {
		fail(r, t, fmt.Errorf("amcheck runs on PostgreSQL; use check_table on %s", t.engine))
		return
	}
	r.keyOverride = []string{"relation", "check"}
	b := &builder{engine: t.engine}
	scope := func(string) string { return "" }
	var args []any
	if c.Table != "" {
		scope = func(col string) string { return " AND " + col + " = $1::regclass" }
		args = append(args, b.ident(c.Table))
	}
	user := " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND c.relpersistence <> 't'"
	indexes := "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam " +
		"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready" + user + scope("i.indrelid") + " ORDER BY 1"
	tables := "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm')" +
		user + scope("c.oid") + " ORDER BY 1"
	r.Query = "bt_index_check(index, heapallindexed => true) and verify_heapam(table) over: " + indexes
	list := func(ctx context.Context, q querier, stmt string) ([]string, error) {
		rows, err := q.QueryContext(ctx, stmt, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, rows.Err()
	}
	var checked int
	err := t.readOnly(ctx, timeout, func(ctx context.Context, q querier) error {
		var schema string
		err := q.QueryRowContext(ctx, "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'").Scan(&schema)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoAmcheck
		}
		if err != nil {
			return err
		}
		var hasHeap bool
		if err := q.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = 'verify_heapam' AND n.nspname = $1)", schema).Scan(&hasHeap); err != nil {
			return err
		}
		fn := b.ident(schema) + "."
		idx, err := list(ctx, q, indexes)
		if err != nil {
			return fmt.Errorf("list indexes: %w", err)
		}
		for _, ix := range idx {
			log.Debug("amcheck", "index", ix)
			err := savepoint(ctx, q, t, func() error {
				_, err := q.ExecContext(ctx, "SELECT "+fn+"bt_index_check($1::regclass, true)", ix)
				return err
			})
			if corrupt(err) {
				r.Violations++
				r.rows = append(r.rows, map[string]any{"relation": ix, "check": "bt_index_check", "message": err.Error()})
			} else if err != nil {
				return fmt.Errorf("bt_index_check %s: %w", ix, err)
			}
			checked++
		}
		if !hasHeap {
			return nil
		}
		tabs, err := list(ctx, q, tables)
		if err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		for _, tab := range tabs {
			rows, err := q.QueryContext(ctx, "SELECT blkno, offnum, attnum, msg FROM "+fn+"verify_heapam($1::regclass)", tab)
			if err != nil {
				return fmt.Errorf("verify_heapam %s: %w", tab, err)
			}
			for rows.Next() {
				var blk int64
				var off, att sql.NullInt64
				var msg string
				if err := rows.Scan(&blk, &off, &att, &msg); err != nil {
					rows.Close()
					return err
				}
				r.Violations++
				if len(r.rows) < trackLimit {
					r.rows = append(r.rows, map[string]any{"relation": tab, "check": fmt.Sprintf("verify_heapam block %d offset %d", blk, off.Int64), "message": msg})
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("verify_heapam %s: %w", tab, err)
			}
			checked++
		}
		return nil
	})
	if err != nil {
		fail(r, t, err)
		return
	}
	r.complete = true
	r.Detail = fmt.Sprintf("%d relations checked, %d problems", checked, r.Violations)
}

// corrupt reports amcheck's corruption errors (SQLSTATE class XX:
// index_corrupted, data_corrupted).
func corrupt(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "XX001" || pg.Code == "XX002")
}

// runCheckTable runs MySQL/MariaDB CHECK TABLE (which commits implicitly,
// so it runs in a session with the statement timeout, not a transaction),
// or SQLite's PRAGMA integrity_check of the table.
func runCheckTable(ctx context.Context, log *slog.Logger, t *target, c *config.Check, r *Result, timeout time.Duration) {
	b := &builder{engine: t.engine}
	r.keyOverride = []string{"message"}
	ctx, cancel := t.ctxFor(ctx, timeout, 1)
	defer cancel()
	var err error
	switch t.engine {
	case dbx.MySQL:
		r.Query = "CHECK TABLE " + b.ident(c.Table)
		err = t.sessionOnly(ctx, timeout, func(ctx context.Context, q querier) error {
			log.Debug("check query", "check", c.Name, "sql", r.Query)
			rows, err := q.QueryContext(ctx, r.Query)
			if err != nil {
				return err
			}
			_, got, err := scanRows(rows, trackLimit)
			if err != nil {
				return err
			}
			for _, row := range got {
				typ, text := fmt.Sprint(row["Msg_type"]), fmt.Sprint(row["Msg_text"])
				switch {
				case strings.EqualFold(typ, "status") && strings.EqualFold(text, "OK"):
				case strings.Contains(text, "doesn't exist"):
					return errors.New(text)
				case strings.EqualFold(typ, "note"):
				default:
					r.Violations++
					r.rows = append(r.rows, map[string]any{"message": typ + ": " + text})
				}
			}
			return nil
		})
	case dbx.SQLite:
		r.Query = "PRAGMA integrity_check(" + b.ident(c.Table) + ")"
		err = t.readOnly(ctx, timeout, func(ctx context.Context, q querier) error {
			var n int
			if err := q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", c.Table).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no such table: %s", c.Table)
			}
			log.Debug("check query", "check", c.Name, "sql", r.Query)
			rows, err := q.QueryContext(ctx, r.Query)
			if err != nil {
				return err
			}
			_, got, err := scanRows(rows, trackLimit)
			if err != nil {
				return err
			}
			for _, row := range got {
				for _, v := range row {
					if s := fmt.Sprint(v); s != "ok" {
						r.Violations++
						r.rows = append(r.rows, map[string]any{"message": s})
					}
				}
			}
			return nil
		})
	default:
		err = fmt.Errorf("check_table runs on MySQL/MariaDB and SQLite; use amcheck on PostgreSQL")
	}
	if err != nil {
		fail(r, t, err)
		return
	}
	r.complete = true
}
