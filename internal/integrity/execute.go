package integrity

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// execute runs checks and returns their results in the same order, without
// recording anything. Checks that can share a scan run as one query.
func execute(ctx context.Context, log *slog.Logger, now func() time.Time, ts *targets, svc *config.Service, checks []*config.Check) []Result {
	results := make([]Result, len(checks))
	for i, c := range checks {
		results[i] = Result{Service: svc.Name, Check: c.Name, Type: c.Type, Database: c.Database, Severity: c.Severity,
			Owner: c.Owner, Sample: []map[string]any{}, StartedAt: now().UTC()}
		if results[i].Severity == "" {
			results[i].Severity = StatusFail
		}
	}
	groups := map[string][]int{}
	for i, c := range checks {
		if fusable(c) {
			k := strings.Join([]string{c.Database, fmt.Sprint(c.Replica), c.Table, strings.TrimSpace(c.Where), c.Timeout,
				fmt.Sprint(c.Chunk), strings.Join(keyCols(c), ",")}, "\x00")
			groups[k] = append(groups[k], i)
		}
	}
	done := make([]bool, len(checks))
	for i, c := range checks {
		if done[i] {
			continue
		}
		if !fusable(c) {
			runSingle(ctx, log, ts, c, &results[i], now)
			done[i] = true
			continue
		}
		k := strings.Join([]string{c.Database, fmt.Sprint(c.Replica), c.Table, strings.TrimSpace(c.Where), c.Timeout,
			fmt.Sprint(c.Chunk), strings.Join(keyCols(c), ",")}, "\x00")
		idx := groups[k]
		var gc []*config.Check
		var gr []*Result
		for _, j := range idx {
			gc = append(gc, checks[j])
			gr = append(gr, &results[j])
			done[j] = true
		}
		runFused(ctx, log, ts, gc, gr, now)
	}
	for i := range results {
		setStatus(&results[i])
		finishSample(checks[i], &results[i])
		if results[i].Status != StatusError && results[i].Violations == 0 {
			results[i].complete = true
		}
	}
	return results
}

func setStatus(r *Result) {
	switch {
	case r.Status != "":
	case r.Violations > 0 && r.Severity == StatusWarn:
		r.Status = StatusWarn
	case r.Violations > 0:
		r.Status = StatusFail
	default:
		r.Status = StatusPass
	}
}

func timeoutOf(c *config.Check) time.Duration {
	d, err := config.ParseDuration(c.Timeout)
	if err != nil || c.Timeout == "" {
		return 60 * time.Second
	}
	return d
}

// fail marks r as not run.
func fail(r *Result, t *target, err error) {
	r.Status = StatusError
	if t != nil {
		r.Error = t.scrub(err)
	} else {
		r.Error = err.Error()
	}
	r.Violations = 0
	r.Sample = []map[string]any{}
	r.rows = nil
}

// runFused runs checks on the same table, database, scope and options as
// one scan, then samples the violating rows of the checks that failed.
func runFused(ctx context.Context, log *slog.Logger, ts *targets, checks []*config.Check, results []*Result, now func() time.Time) {
	c0 := checks[0]
	start := time.Now()
	finish := func() {
		ms := time.Since(start).Milliseconds()
		for _, r := range results {
			r.DurationMS += ms
		}
	}
	t, err := ts.get(ctx, c0.Database, c0.Replica)
	if err != nil {
		for _, r := range results {
			fail(r, nil, err)
		}
		return
	}
	timeout := timeoutOf(c0)
	if c0.Chunk > 0 && len(keyCols(c0)) != 1 {
		for _, r := range results {
			fail(r, t, fmt.Errorf("chunk needs a single key column, the check has key %v", keyCols(c0)))
		}
		return
	}
	b := &builder{engine: t.engine}
	// With chunks, the query shown is the repeated one (key > the last).
	query, pos, ncols := b.fusedQuery(c0.Table, c0.Where, checks, firstOr(keyCols(c0)), c0.Chunk, false)
	for _, r := range results {
		r.Query = query
	}
	total := int64(0)
	counts := make([]int64, len(checks))
	newest := make([]any, len(checks))
	scanOnce := func(ctx context.Context, q querier, sqlText string, args []any) (rows int64, last any, err error) {
		log.Debug("check query", "database", c0.Database, "sql", sqlText)
		vals := make([]any, ncols)
		dest := make([]any, ncols)
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := q.QueryRowContext(ctx, sqlText, args...).Scan(dest...); err != nil {
			return 0, nil, err
		}
		n, err := toInt64(vals[0])
		if err != nil {
			return 0, nil, fmt.Errorf("count: %w", err)
		}
		for i, c := range checks {
			switch c.Type {
			case "row_count":
			case "freshness":
				newest[i] = maxValue(newest[i], vals[pos[i]])
			default:
				v, err := toInt64(vals[pos[i]])
				if err != nil {
					return 0, nil, fmt.Errorf("%s: %w", c.Name, err)
				}
				counts[i] += v
			}
		}
		if c0.Chunk > 0 {
			last = vals[ncols-1]
		}
		return n, last, nil
	}
	sampleAll := func(ctx context.Context, q querier) {
		for i, c := range checks {
			if counts[i] == 0 || c.Type == "freshness" || c.Type == "row_count" {
				continue
			}
			sb := &builder{engine: t.engine}
			sq := sb.sampleQuery(c.Table, c, sb.violation(c), trackLimit)
			sampleInto(ctx, log, q, t, sq, sb.args, c, results[i], counts[i])
		}
	}
	var runErr error
	if c0.Chunk <= 0 {
		ctx, cancel := t.ctxFor(ctx, timeout, 1+len(checks))
		defer cancel()
		runErr = t.readOnly(ctx, timeout, func(ctx context.Context, q querier) error {
			n, _, err := scanOnce(ctx, q, query, b.args)
			if err != nil {
				return err
			}
			total = n
			sampleAll(ctx, q)
			return nil
		})
	} else {
		var last any
		for first := true; ; first = false {
			cb := &builder{engine: t.engine}
			cq, _, _ := cb.fusedQuery(c0.Table, c0.Where, checks, keyCols(c0)[0], c0.Chunk, first)
			if !first {
				cb.args[len(cb.args)-1] = last
			}
			var n int64
			cctx, cancel := t.ctxFor(ctx, timeout, 1)
			err := t.readOnly(cctx, timeout, func(ctx context.Context, q querier) error {
				var err error
				n, last, err = scanOnce(ctx, q, cq, cb.args)
				return err
			})
			cancel()
			if err != nil {
				runErr = fmt.Errorf("chunk after key %v: %w", last, err)
				break
			}
			total += n
			if n < int64(c0.Chunk) || last == nil {
				break
			}
		}
		if runErr == nil {
			ctx, cancel := t.ctxFor(ctx, timeout, len(checks))
			defer cancel()
			runErr = t.readOnly(ctx, timeout, func(ctx context.Context, q querier) error {
				sampleAll(ctx, q)
				return nil
			})
		}
	}
	finish()
	if runErr != nil && len(checks) > 1 && ctx.Err() == nil && !isTimeout(runErr) && !isConnection(runErr) {
		// One bad check (a typo in a predicate) must not take down the
		// others it was fused with: run each alone to find it.
		log.Warn("fused check query failed; running the checks one by one", "table", c0.Table, "err", t.scrub(runErr))
		for i := range checks {
			*results[i] = Result{Service: results[i].Service, Check: results[i].Check, Type: results[i].Type, Database: results[i].Database,
				Severity: results[i].Severity, Owner: results[i].Owner, Sample: []map[string]any{}, StartedAt: results[i].StartedAt}
			runFused(ctx, log, ts, checks[i:i+1], results[i:i+1], now)
		}
		return
	}
	if runErr != nil {
		for _, r := range results {
			fail(r, t, runErr)
		}
		return
	}
	for i, c := range checks {
		r := results[i]
		rows := total
		r.Rows = &rows
		switch c.Type {
		case "row_count":
			r.Violations, r.Detail = rowCountBounds(c, total)
		case "freshness":
			r.Violations, r.Detail = freshness(c, newest[i], now())
		default:
			r.Violations = counts[i]
			if r.Violations > 0 {
				r.Detail = fmt.Sprintf("%d of %d rows", r.Violations, total)
			}
		}
	}
}

func firstOr(s []string) string {
	if len(s) > 0 {
		return s[0]
	}
	return ""
}

// sampleInto fetches the violating rows of one check (key and show columns,
// at most trackLimit) into r. A failing sample does not change the count;
// it is reported in r.Error.
func sampleInto(ctx context.Context, log *slog.Logger, q querier, t *target, query string, args []any, c *config.Check, r *Result, violations int64) {
	log.Debug("check sample query", "check", c.Name, "sql", query)
	start := time.Now()
	defer func() { r.DurationMS += time.Since(start).Milliseconds() }()
	err := savepoint(ctx, q, t, func() error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		cols, got, err := scanRows(rows, trackLimit)
		if err != nil {
			return err
		}
		r.cols, r.rows = cols, got
		r.complete = len(got) < trackLimit || int64(len(got)) >= violations
		return nil
	})
	if err != nil {
		r.Error = "sample: " + t.scrub(err)
	}
}

// savepoint runs fn so that its failure does not abort the enclosing
// PostgreSQL transaction.
func savepoint(ctx context.Context, q querier, t *target, fn func() error) error {
	if t.engine != dbx.Postgres {
		return fn()
	}
	if _, err := q.ExecContext(ctx, "SAVEPOINT steward_sample"); err != nil {
		return err
	}
	if err := fn(); err != nil {
		if _, rerr := q.ExecContext(ctx, "ROLLBACK TO SAVEPOINT steward_sample"); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	_, err := q.ExecContext(ctx, "RELEASE SAVEPOINT steward_sample")
	return err
}

// scanRows reads up to limit rows as column -> value maps.
func scanRows(rows *sql.Rows, limit int) ([]string, []map[string]any, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	types, _ := rows.ColumnTypes()
	var out []map[string]any
	for rows.Next() && len(out) < limit {
		vals := make([]any, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			dbType := ""
			if i < len(types) {
				dbType = types[i].DatabaseTypeName()
			}
			m[c] = normalize(vals[i], dbType)
		}
		out = append(out, m)
	}
	return cols, out, rows.Err()
}

func rowCountBounds(c *config.Check, n int64) (int64, string) {
	switch {
	case c.Min >= 0 && n < int64(c.Min):
		return 1, fmt.Sprintf("%d rows, fewer than the minimum %d", n, c.Min)
	case c.Max >= 0 && n > int64(c.Max):
		return 1, fmt.Sprintf("%d rows, more than the maximum %d", n, c.Max)
	}
	return 0, fmt.Sprintf("%d rows", n)
}

func freshness(c *config.Check, newest any, now time.Time) (int64, string) {
	maxAge, err := config.ParseDuration(c.MaxAge)
	if err != nil {
		return 1, fmt.Sprintf("max_age: %v", err)
	}
	if newest == nil {
		return 1, fmt.Sprintf("no rows: %s has no newest value", c.Column)
	}
	ts, err := toTime(newest)
	if err != nil {
		return 1, fmt.Sprintf("newest %s: %v", c.Column, err)
	}
	age := now.Sub(ts)
	if age > maxAge {
		return 1, fmt.Sprintf("newest %s is %s old (at %s), more than max_age %s", c.Column, age.Round(time.Second), ts.UTC().Format(time.RFC3339), c.MaxAge)
	}
	return 0, fmt.Sprintf("newest %s is %s old", c.Column, max(age, 0).Round(time.Second))
}

// runSingle runs a check that does not share a scan.
func runSingle(ctx context.Context, log *slog.Logger, ts *targets, c *config.Check, r *Result, now func() time.Time) {
	start := time.Now()
	defer func() { r.DurationMS += time.Since(start).Milliseconds() }()
	if c.Type == "reconcile" {
		runReconcile(ctx, log, ts, c, r)
		return
	}
	t, err := ts.get(ctx, c.Database, c.Replica)
	if err != nil {
		fail(r, nil, err)
		return
	}
	timeout := timeoutOf(c)
	var run func(ctx context.Context, q querier) error
	switch c.Type {
	case "unique":
		b := &builder{engine: t.engine}
		count, sample := b.uniqueQueries(c, trackLimit)
		r.Query = count
		run = func(ctx context.Context, q querier) error {
			log.Debug("check query", "check", c.Name, "sql", count)
			var groups, rows int64
			if err := q.QueryRowContext(ctx, count).Scan(&groups, &rows); err != nil {
				return err
			}
			r.Violations = rows
			if rows > 0 {
				r.Detail = fmt.Sprintf("%d rows share %d duplicated values of (%s)", rows, groups, strings.Join(uniqueCols(c), ", "))
				sampleInto(ctx, log, q, t, sample, nil, c, r, rows)
			}
			return nil
		}
	case "foreign_key":
		b := &builder{engine: t.engine}
		cond := b.orphan(c)
		count := "SELECT count(*) FROM " + b.ident(c.Table) + whereClause(c.Where, cond)
		r.Query = count
		run = func(ctx context.Context, q querier) error {
			log.Debug("check query", "check", c.Name, "sql", count)
			if err := q.QueryRowContext(ctx, count).Scan(&r.Violations); err != nil {
				return err
			}
			if r.Violations > 0 {
				r.Detail = fmt.Sprintf("%d rows reference a missing %s", r.Violations, c.References)
				sb := &builder{engine: t.engine}
				sampleInto(ctx, log, q, t, sb.sampleQuery(c.Table, c, sb.orphan(c), trackLimit), nil, c, r, r.Violations)
			}
			return nil
		}
	case "sql":
		inner := userQuery(c.SQL)
		count := "SELECT count(*) FROM (" + inner + ") AS q"
		r.Query = count
		run = func(ctx context.Context, q querier) error {
			log.Debug("check query", "check", c.Name, "sql", count)
			if err := q.QueryRowContext(ctx, count).Scan(&r.Violations); err != nil {
				return err
			}
			if r.Violations > 0 {
				r.Detail = fmt.Sprintf("the query returned %d rows", r.Violations)
				sampleSQL(ctx, log, q, t, inner, c, r)
			}
			return nil
		}
	case "amcheck":
		runAmcheck(ctx, log, t, c, r, timeout)
		return
	case "check_table":
		runCheckTable(ctx, log, t, c, r, timeout)
		return
	default:
		fail(r, t, fmt.Errorf("unknown check type %q", c.Type))
		return
	}
	ctx, cancel := t.ctxFor(ctx, timeout, 2)
	defer cancel()
	if err := t.readOnly(ctx, timeout, run); err != nil {
		fail(r, t, err)
	}
}

// sampleSQL samples the rows of an sql check's query: key and show
// columns that the query returns, in key order when it returns the keys.
func sampleSQL(ctx context.Context, log *slog.Logger, q querier, t *target, inner string, c *config.Check, r *Result) {
	b := &builder{engine: t.engine}
	var cols []string
	err := savepoint(ctx, q, t, func() error {
		rows, err := q.QueryContext(ctx, "SELECT * FROM ("+inner+") AS q WHERE 1 = 0")
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err = rows.Columns()
		return err
	})
	if err != nil {
		r.Error = "sample: " + t.scrub(err)
		return
	}
	has := map[string]bool{}
	for _, col := range cols {
		has[col] = true
	}
	var sel, order []string
	for _, col := range sampleCols(c) {
		if has[col] {
			sel = append(sel, "q."+b.ident(col))
		}
	}
	for _, k := range keyCols(c) {
		if has[k] {
			order = append(order, "q."+b.ident(k))
		}
	}
	if len(sel) == 0 {
		return // neither keys nor show columns: a count only
	}
	sq := "SELECT " + strings.Join(sel, ", ") + " FROM (" + inner + ") AS q"
	if len(order) == len(keyCols(c)) {
		sq += " ORDER BY " + strings.Join(order, ", ")
	}
	sq += fmt.Sprintf(" LIMIT %d", trackLimit)
	sampleInto(ctx, log, q, t, sq, nil, c, r, r.Violations)
	if len(order) != len(keyCols(c)) {
		r.complete = false // no keys: no history
		r.noKeys = true
	}
}

// isTimeout recognizes statement timeouts: PostgreSQL 57014, MariaDB 1969,
// MySQL 3024, and a context deadline.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	m := err.Error()
	for _, s := range []string{"SQLSTATE 57014", "statement timeout", "max_statement_time", "Error 1969", "Error 3024", "interrupted"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// isConnection recognizes a lost or refused connection.
func isConnection(err error) bool {
	if errors.Is(err, driver.ErrBadConn) {
		return true
	}
	m := err.Error()
	for _, s := range []string{"connection refused", "broken pipe", "connection reset", "invalid connection", "connect:"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
