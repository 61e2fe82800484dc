package integrity

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// runReconcile compares the two queries of a reconcile check: one aggregate
// row column by column, or the key sets (first column) by a merge of both
// result streams sorted in the database, so neither side is held in memory.
func runReconcile(ctx context.Context, log *slog.Logger, ts *targets, c *config.Check, r *Result) {
	ldb, rdb := c.Database, c.Database
	if c.Left.Database != "" {
		ldb = c.Left.Database
	}
	if c.Right.Database != "" {
		rdb = c.Right.Database
	}
	lt, err := ts.get(ctx, ldb, c.Replica)
	if err != nil {
		fail(r, nil, fmt.Errorf("left: %w", err))
		return
	}
	rt, err := ts.get(ctx, rdb, c.Replica)
	if err != nil {
		fail(r, nil, fmt.Errorf("right: %w", err))
		return
	}
	timeout := timeoutOf(c)
	left, right := userQuery(c.Left.SQL), userQuery(c.Right.SQL)
	ctx, cancel := lt.ctxFor(ctx, timeout, 2)
	defer cancel()
	if c.Mode == "keys" {
		r.keyOverride = []string{"key", "only_in"}
		err = lt.readOnly(ctx, timeout, func(ctx context.Context, lq querier) error {
			return rt.readOnly(ctx, timeout, func(ctx context.Context, rq querier) error {
				return mergeKeys(ctx, log, lt, lq, left, rt, rq, right, r)
			})
		})
	} else {
		r.keyOverride = []string{"column"}
		err = compareAggregates(ctx, log, lt, rt, timeout, left, right, r)
	}
	if err != nil {
		fail(r, nil, fmt.Errorf("%s", scrubBoth(lt, rt, err)))
	}
}

func scrubBoth(a, b *target, err error) string {
	msg := a.scrub(err)
	for _, s := range b.secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}

func compareAggregates(ctx context.Context, log *slog.Logger, lt, rt *target, timeout time.Duration, left, right string, r *Result) error {
	r.Query = "left: " + left + "\nright: " + right
	one := func(t *target, q string) (cols []string, row map[string]any, err error) {
		err = t.readOnly(ctx, timeout, func(ctx context.Context, tx querier) error {
			log.Debug("check query", "check", r.Check, "sql", q)
			rows, err := tx.QueryContext(ctx, q)
			if err != nil {
				return err
			}
			var got []map[string]any
			cols, got, err = scanRows(rows, 1)
			if err != nil {
				return err
			}
			if len(got) == 0 {
				return fmt.Errorf("the query returned no row")
			}
			row = got[0]
			return nil
		})
		return cols, row, err
	}
	lc, lrow, err := one(lt, left)
	if err != nil {
		return fmt.Errorf("left: %w", err)
	}
	rc, rrow, err := one(rt, right)
	if err != nil {
		return fmt.Errorf("right: %w", err)
	}
	if len(lc) != len(rc) {
		return fmt.Errorf("left returns %d columns, right %d: they must return the same aggregates", len(lc), len(rc))
	}
	var diffs []string
	for i := range lc {
		lv, rv := lrow[lc[i]], rrow[rc[i]]
		if !sameValue(lv, rv) {
			r.Violations++
			r.rows = append(r.rows, map[string]any{"column": lc[i], "left": lv, "right": rv})
			diffs = append(diffs, fmt.Sprintf("%s: %v vs %v", lc[i], lv, rv))
		}
	}
	r.complete = true
	if len(diffs) > 0 {
		r.Detail = "differs: " + strings.Join(diffs, "; ")
	}
	return nil
}

// sameValue compares two aggregate values: numbers exactly by value
// (12.50 = 12.5), everything else by text.
func sameValue(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ra, oka := new(big.Rat).SetString(fmt.Sprint(a))
	rb, okb := new(big.Rat).SetString(fmt.Sprint(b))
	if oka && okb {
		return ra.Cmp(rb) == 0
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// keyStream reads the first column of a query in a byte-wise (text) or
// numeric order the database produces and Go compares the same way.
type keyStream struct {
	side    string
	rows    *sql.Rows
	numeric bool
	cur     any
	ok      bool
	prev    any
	hasPrev bool
}

func openKeys(ctx context.Context, log *slog.Logger, t *target, q querier, query, side string) (*keyStream, string, error) {
	probe, err := q.QueryContext(ctx, "SELECT * FROM ("+query+") AS q WHERE 1 = 0")
	if err != nil {
		return nil, "", err
	}
	cols, err := probe.Columns()
	types, _ := probe.ColumnTypes()
	probe.Close()
	if err != nil {
		return nil, "", err
	}
	if len(cols) == 0 {
		return nil, "", fmt.Errorf("the query returns no column")
	}
	b := &builder{engine: t.engine}
	col := "q." + b.ident(cols[0])
	numeric := isNumericType(types[0].DatabaseTypeName())
	order := col
	if !numeric {
		switch t.engine {
		case dbx.Postgres:
			order = col + `::text COLLATE "C"`
		case dbx.MySQL:
			order = "CAST(" + col + " AS BINARY)"
		case dbx.SQLite:
			order = "CAST(" + col + " AS TEXT) COLLATE BINARY"
		}
	}
	stmt := "SELECT " + col + " FROM (" + query + ") AS q ORDER BY " + order
	log.Debug("check query", "side", side, "sql", stmt)
	rows, err := q.QueryContext(ctx, stmt)
	if err != nil {
		return nil, "", err
	}
	s := &keyStream{side: side, rows: rows, numeric: numeric}
	return s, stmt, s.next()
}

func isNumericType(t string) bool {
	switch strings.ToUpper(t) {
	case "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT", "INT2", "INT4", "INT8", "NUMERIC", "DECIMAL",
		"UNSIGNED INT", "UNSIGNED BIGINT", "UNSIGNED SMALLINT", "UNSIGNED TINYINT", "UNSIGNED MEDIUMINT":
		return true
	}
	return false
}

func (s *keyStream) next() error {
	if s.ok {
		s.prev, s.hasPrev = s.cur, true
	}
	s.ok = s.rows.Next()
	if !s.ok {
		return s.rows.Err()
	}
	var v any
	if err := s.rows.Scan(&v); err != nil {
		return err
	}
	v = normalize(v, "")
	if u, ok := v.([16]byte); ok {
		v = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	s.cur = v
	if s.hasPrev && compareKeys(s.prev, s.cur, s.numeric) > 0 {
		return fmt.Errorf("%s keys are not in a consistent order (%v after %v): cast the key column to text or an integer in both queries", s.side, s.cur, s.prev)
	}
	return nil
}

func compareKeys(a, b any, numeric bool) int {
	if numeric {
		ra, oka := new(big.Rat).SetString(fmt.Sprint(a))
		rb, okb := new(big.Rat).SetString(fmt.Sprint(b))
		if oka && okb {
			return ra.Cmp(rb)
		}
	}
	return strings.Compare(keyText(a), keyText(b))
}

func keyText(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func mergeKeys(ctx context.Context, log *slog.Logger, lt *target, lq querier, left string, rt *target, rq querier, right string, r *Result) error {
	l, lstmt, err := openKeys(ctx, log, lt, lq, left, "left")
	if err != nil {
		return fmt.Errorf("left: %w", err)
	}
	defer l.rows.Close()
	rs, rstmt, err := openKeys(ctx, log, rt, rq, right, "right")
	if err != nil {
		return fmt.Errorf("right: %w", err)
	}
	defer rs.rows.Close()
	r.Query = "left: " + lstmt + "\nright: " + rstmt
	if l.numeric != rs.numeric {
		return fmt.Errorf("the key column is numeric on one side and text on the other: cast both to the same type")
	}
	var onlyLeft, onlyRight int64
	add := func(k any, side string) {
		r.Violations++
		if len(r.rows) < trackLimit {
			r.rows = append(r.rows, map[string]any{"key": k, "only_in": side})
		}
	}
	for l.ok || rs.ok {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case !rs.ok || (l.ok && compareKeys(l.cur, rs.cur, l.numeric) < 0):
			add(l.cur, "left")
			onlyLeft++
			err = l.next()
		case !l.ok || compareKeys(l.cur, rs.cur, l.numeric) > 0:
			add(rs.cur, "right")
			onlyRight++
			err = rs.next()
		default:
			if err = l.next(); err == nil {
				err = rs.next()
			}
		}
		if err != nil {
			return err
		}
	}
	r.complete = r.Violations <= trackLimit
	if r.Violations > 0 {
		r.Detail = fmt.Sprintf("%d keys only in left, %d only in right", onlyLeft, onlyRight)
	}
	return nil
}
