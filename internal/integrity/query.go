package integrity

import (
	"fmt"
	"strings"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// builder writes one SQL statement for an engine, with its bind arguments.
type builder struct {
	engine string
	args   []any
}

// arg binds v and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return dbx.Placeholder(b.engine, len(b.args))
}

// lit renders a string constant. PostgreSQL and SQLite get a literal, so the
// planner types it from the column it is compared with (int, enum, text);
// MySQL a bind argument, whose literal escaping depends on the sql_mode.
func (b *builder) lit(v string) string {
	switch b.engine {
	case dbx.Postgres:
		return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
	case dbx.SQLite:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	default:
		return b.arg(v)
	}
}

func (b *builder) ident(name string) string { return dbx.QuoteIdent(b.engine, name) }

func (b *builder) idents(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = b.ident(n)
	}
	return out
}

// and joins the non-empty conditions, each parenthesized.
func and(conds ...string) string {
	var parts []string
	for _, c := range conds {
		if c = strings.TrimSpace(c); c != "" {
			parts = append(parts, "("+c+")")
		}
	}
	return strings.Join(parts, " AND ")
}

func whereClause(conds ...string) string {
	if c := and(conds...); c != "" {
		return " WHERE " + c
	}
	return ""
}

// violation is the SQL condition true for a row that violates a per-row
// check. NULL semantics: not_null counts NULLs; accepted_values leaves NULLs
// to not_null; a row_predicate that is NULL is a violation ("every row must
// satisfy"), so it is tested with IS NOT TRUE rather than NOT.
func (b *builder) violation(c *config.Check) string {
	col := b.ident(c.Column)
	switch c.Type {
	case "not_null":
		return col + " IS NULL"
	case "accepted_values":
		vals := make([]string, len(c.Values))
		for i, v := range c.Values {
			vals[i] = b.lit(v)
		}
		return col + " IS NOT NULL AND " + col + " NOT IN (" + strings.Join(vals, ", ") + ")"
	case "row_predicate":
		return "(" + c.Predicate + ") IS NOT TRUE"
	}
	panic("integrity: no per-row violation for type " + c.Type)
}

// countViolations is the aggregate counting a check's violations within a
// fused scan: count(*) FILTER on PostgreSQL, SUM(CASE …) elsewhere.
func (b *builder) countViolations(c *config.Check) string {
	if b.engine == dbx.Postgres {
		return "count(*) FILTER (WHERE " + b.violation(c) + ")"
	}
	if c.Type == "row_predicate" {
		// CASE WHEN p THEN 0 ELSE 1 counts NULL as a violation too.
		return "COALESCE(SUM(CASE WHEN (" + c.Predicate + ") THEN 0 ELSE 1 END), 0)"
	}
	return "COALESCE(SUM(CASE WHEN " + b.violation(c) + " THEN 1 ELSE 0 END), 0)"
}

// fusable reports whether a check's result is an aggregate over a per-row
// scan of its table, so that it can share the scan with others.
func fusable(c *config.Check) bool {
	switch c.Type {
	case "not_null", "accepted_values", "row_predicate", "freshness", "row_count":
		return true
	}
	return false
}

// fusedQuery is one scan computing several checks: column 0 is count(*),
// then one column per check (none for row_count, which uses column 0).
// With chunk > 0 it scans the rows with key > last (the first placeholder,
// absent when first) in key order, chunk rows at a time, and returns the
// chunk's largest key as the last column.
func (b *builder) fusedQuery(table, where string, checks []*config.Check, chunkKey string, chunk int, first bool) (query string, pos []int, ncols int) {
	cols := []string{"count(*)"}
	pos = make([]int, len(checks))
	for i, c := range checks {
		switch c.Type {
		case "row_count":
			pos[i] = 0
		case "freshness":
			pos[i] = len(cols)
			cols = append(cols, "max("+b.ident(c.Column)+")")
		default:
			pos[i] = len(cols)
			cols = append(cols, b.countViolations(c))
		}
	}
	if chunk <= 0 {
		return "SELECT " + strings.Join(cols, ", ") + " FROM " + b.ident(table) + whereClause(where), pos, len(cols)
	}
	k := b.ident(chunkKey)
	after := ""
	if !first {
		after = k + " > " + b.arg(nil) // bound by the caller
	}
	cols = append(cols, "max("+k+")")
	inner := "SELECT * FROM " + b.ident(table) + whereClause(where, after) + " ORDER BY " + k + fmt.Sprintf(" LIMIT %d", chunk)
	return "SELECT " + strings.Join(cols, ", ") + " FROM (" + inner + ") s", pos, len(cols)
}

// sampleQuery selects the key and show columns of the rows matching cond,
// in key order, at most limit rows.
func (b *builder) sampleQuery(table string, c *config.Check, cond string, limit int) string {
	cols := sampleCols(c)
	return "SELECT " + strings.Join(b.idents(cols), ", ") + " FROM " + b.ident(table) + whereClause(c.Where, cond) +
		" ORDER BY " + strings.Join(b.idents(keyCols(c)), ", ") + fmt.Sprintf(" LIMIT %d", limit)
}

// uniqueQueries counts the duplicate groups and the rows in them, and
// samples those rows.
func (b *builder) uniqueQueries(c *config.Check, limit int) (count, sample string) {
	cols := uniqueCols(c)
	qc := b.idents(cols)
	var notNull []string
	for _, q := range qc {
		notNull = append(notNull, q+" IS NOT NULL")
	}
	t := b.ident(c.Table)
	groups := " FROM " + t + whereClause(c.Where, strings.Join(notNull, " AND ")) + " GROUP BY " + strings.Join(qc, ", ") + " HAVING count(*) > 1"
	count = "SELECT count(*), COALESCE(SUM(n), 0) FROM (SELECT count(*) AS n" + groups + ") d"
	var as, on []string
	for i, q := range qc {
		as = append(as, fmt.Sprintf("%s AS u%d", q, i))
		on = append(on, fmt.Sprintf("%s.%s = d.u%d", t, q, i))
	}
	var sel, order []string
	for _, col := range sampleCols(c) {
		sel = append(sel, t+"."+b.ident(col))
	}
	for _, col := range keyCols(c) {
		order = append(order, t+"."+b.ident(col))
	}
	sample = "SELECT " + strings.Join(sel, ", ") + " FROM " + t + " JOIN (SELECT " + strings.Join(as, ", ") + groups + ") d ON " +
		strings.Join(on, " AND ") + whereClause(c.Where) + " ORDER BY " + strings.Join(order, ", ") + fmt.Sprintf(" LIMIT %d", limit)
	return count, sample
}

// orphan is the condition of a child row whose parent is missing (an
// anti-join by NOT EXISTS; the child table keeps its name so that where
// can refer to its columns unqualified or qualified).
func (b *builder) orphan(c *config.Check) string {
	ptable, pcol, _ := strings.Cut(c.References, ".")
	if i := strings.LastIndex(c.References, "."); i > 0 {
		ptable, pcol = c.References[:i], c.References[i+1:]
	}
	child := b.ident(c.Table) + "." + b.ident(c.Column)
	return child + " IS NOT NULL AND NOT EXISTS (SELECT 1 FROM " + b.ident(ptable) + " p WHERE p." + b.ident(pcol) + " = " + child + ")"
}

func keyCols(c *config.Check) []string {
	if len(c.Key) > 0 {
		return c.Key
	}
	return []string{"id"}
}

func uniqueCols(c *config.Check) []string {
	if len(c.Columns) > 0 {
		return c.Columns
	}
	return []string{c.Column}
}

// sampleCols are the key columns then the show columns, without repeats.
func sampleCols(c *config.Check) []string {
	out := append([]string(nil), keyCols(c)...)
	for _, s := range c.Show {
		dup := false
		for _, o := range out {
			dup = dup || o == s
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

// userQuery trims what would break wrapping a query as a subquery.
func userQuery(q string) string {
	return strings.TrimRight(strings.TrimSpace(q), "; \t\n")
}
