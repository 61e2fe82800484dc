package store

import (
	"context"
	"fmt"
	"strings"
)

// scanner is a row or rows being scanned.
type scanner interface{ Scan(...any) error }

// filter builds the WHERE clause of a list query from optional conditions.
type filter struct {
	conds []string
	args  []any
}

// eq adds "col = v" when v is set.
func (f *filter) eq(col, v string) {
	if v != "" {
		f.conds = append(f.conds, col+" = ?")
		f.args = append(f.args, v)
	}
}

// in adds "col IN (…)" when vs is not empty.
func (f *filter) in(col string, vs []string) { f.list(col, " IN (", vs) }

// notIn adds "col NOT IN (…)" when vs is not empty.
func (f *filter) notIn(col string, vs []string) { f.list(col, " NOT IN (", vs) }

func (f *filter) list(col, op string, vs []string) {
	if len(vs) == 0 {
		return
	}
	f.conds = append(f.conds, col+op+strings.TrimSuffix(strings.Repeat("?,", len(vs)), ",")+")")
	for _, v := range vs {
		f.args = append(f.args, v)
	}
}

// add adds a condition with one placeholder and its argument.
func (f *filter) add(cond string, arg any) {
	f.conds = append(f.conds, cond)
	f.args = append(f.args, arg)
}

// where is the WHERE clause, or "" when there is no condition.
func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// limitClause is " LIMIT n" with n defaulting to 100 and capped at 1000.
func limitClause(n int) string {
	if n <= 0 {
		n = 100
	}
	return fmt.Sprintf(" LIMIT %d", min(n, 1000))
}

// list runs a query and scans every row; what names the query in errors.
func list[T any](ctx context.Context, s *Store, what, q string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
