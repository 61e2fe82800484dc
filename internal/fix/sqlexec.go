package fix

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/stewardhq/steward/internal/action"
)

// SQLParams are the parameters of a sql.exec action.
type SQLParams struct {
	Service   string `json:"service"`
	Database  string `json:"database"`
	Statement string `json:"statement"`
}

// SQLPlan is the dry run of a guarded statement.
type SQLPlan struct {
	Service   string           `json:"service"`
	Database  string           `json:"database"`
	Engine    string           `json:"engine"`
	Table     string           `json:"table"`
	Key       []string         `json:"key"`
	Verb      string           `json:"verb"`
	Statement string           `json:"statement"`
	Count     int              `json:"rows_affected"`
	KeysHash  string           `json:"keys_sha256,omitempty"`
	Keys      []string         `json:"keys,omitempty"`
	Sample    []map[string]any `json:"sample,omitempty"` // rows as they are now (UPDATE, DELETE)
}

const sqlSampleRows = 10

// Name implements action.Kind.
func (k *SQLKind) Name() string { return SQLKindName }

func (k *SQLKind) params(a *action.Action) (SQLParams, error) {
	var p SQLParams
	if err := parseParams(a, &p); err != nil {
		return p, err
	}
	if p.Service == "" {
		p.Service = a.Service
	}
	if p.Service != a.Service || p.Database == "" || strings.TrimSpace(p.Statement) == "" {
		return p, fmt.Errorf("%w: sql.exec needs service (the action's), database and statement", action.ErrBadParams)
	}
	return p, nil
}

// sqlStatement parses and checks a guarded statement for the engine.
func sqlStatement(engine, text string) (Statement, error) {
	st, err := ParseStatement(engine, text)
	if err != nil {
		return st, err
	}
	if _, _, err := Bind(engine, st.Text, Values{}); err != nil {
		return st, fmt.Errorf("%w (guarded SQL takes no parameters; write the values)", err)
	}
	if st.Verb != "INSERT" && !st.Simple {
		return st, fmt.Errorf("%w: guarded SQL takes a single-table %s (no FROM, USING, JOIN, ORDER BY or LIMIT), so that the rows it changes are exactly the rows its WHERE selects", ErrStatement, st.Verb)
	}
	return st, nil
}

func (st Statement) lockQuery() string {
	q := "SELECT * FROM " + st.Table
	if st.Alias != "" {
		q += " " + st.Alias
	}
	return q + " WHERE " + st.Where
}

// DryRun executes the statement in a transaction that is rolled back and
// reports the rows it would change.
func (d *Deps) DryRun(ctx context.Context, p SQLParams) (*SQLPlan, error) {
	engine := d.engineOf(p.Service, p.Database)
	if engine == "" {
		return nil, fmt.Errorf("%w: service %q has no database %q", ErrUnknownFix, p.Service, p.Database)
	}
	st, err := sqlStatement(engine, p.Statement)
	if err != nil {
		return nil, err
	}
	t, err := d.openTarget(ctx, p.Service, p.Database, false)
	if err != nil {
		return nil, err
	}
	defer t.db.Close()
	key, err := primaryKey(ctx, t.db, engine, st.Table)
	if err != nil {
		return nil, err
	}
	plan := &SQLPlan{Service: p.Service, Database: p.Database, Engine: engine, Table: st.Table, Key: key, Verb: st.Verb, Statement: st.Text}
	tx, err := d.begin(ctx, t)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // a dry run never commits
	if st.Verb == "INSERT" {
		rs, err := queryRows(ctx, tx, engine, st.Text+"\nRETURNING *")
		if err != nil {
			return nil, fmt.Errorf("dry run: %w", err)
		}
		plan.Count = len(rs.rows)
	} else {
		rs, err := queryRows(ctx, tx, engine, st.lockQuery())
		if err != nil {
			return nil, fmt.Errorf("dry run: select the rows of the WHERE clause: %w", err)
		}
		idx, err := rs.colIndex(key)
		if err != nil {
			return nil, err
		}
		keys := make([]string, len(rs.rows))
		order := make([]int, len(rs.rows))
		for i, row := range rs.rows {
			keys[i], order[i] = keyOf(row, idx), i
		}
		sort.Slice(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
		plan.KeysHash = keysHash(keys)
		for n, i := range order {
			if n < previewKeys {
				plan.Keys = append(plan.Keys, keys[i])
			}
			if n < sqlSampleRows {
				plan.Sample = append(plan.Sample, rs.object(i))
			}
		}
		res, err := tx.ExecContext(ctx, st.Text)
		if err != nil {
			return nil, fmt.Errorf("dry run: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("dry run: %w", err)
		}
		plan.Count = int(n)
		if plan.Count != len(keys) {
			return plan, fmt.Errorf("%w: the statement changes %d rows but its WHERE selects %d rows of %s", ErrStatement, n, len(keys), st.Table)
		}
	}
	if err := tx.Rollback(); err != nil {
		return nil, fmt.Errorf("dry run: roll back: %w", err)
	}
	if plan.Count == 0 {
		return plan, fmt.Errorf("%w: the statement changes no rows", ErrNothingToFix)
	}
	return plan, nil
}

// Plan is the dry run.
func (k *SQLKind) Plan(ctx context.Context, a *action.Action) (action.Plan, error) {
	p, err := k.params(a)
	if err != nil {
		return action.Plan{}, err
	}
	plan, err := k.d.DryRun(ctx, p)
	if err != nil {
		return action.Plan{}, err
	}
	return action.Plan{
		Summary: fmt.Sprintf("guarded SQL on %s/%s: %s %d row(s) of %s", p.Service, p.Database, plan.Verb, plan.Count, plan.Table),
		Details: toMap(plan),
		Facts:   map[string]any{"rows_affected": plan.Count, "verb": plan.Verb, "table": plan.Table, "database": p.Database},
		Risk:    maxRisk(risk(plan.Verb, plan.Count), action.RiskMedium), // hand-written SQL is never low risk
	}, nil
}

func maxRisk(a, b string) string {
	rank := map[string]int{action.RiskLow: 0, action.RiskMedium: 1, action.RiskHigh: 2, action.RiskCritical: 3}
	if rank[a] >= rank[b] {
		return a
	}
	return b
}

// Execute runs the statement in one transaction, guarded against the dry
// run: same rows, same count, before- and after-images kept.
func (k *SQLKind) Execute(ctx context.Context, a *action.Action) (action.Result, error) {
	p, err := k.params(a)
	if err != nil {
		return action.Result{}, err
	}
	var plan SQLPlan
	if err := remarshal(a.Plan.Details, &plan); err != nil || plan.Count == 0 {
		return action.Result{}, fmt.Errorf("%w: the approved plan has no row count", action.ErrBadParams)
	}
	st, err := sqlStatement(plan.Engine, p.Statement)
	if err != nil {
		return action.Result{}, err
	}
	if st.Text != plan.Statement {
		return action.Result{}, fmt.Errorf("%w: the statement is not the approved one", ErrDataChanged)
	}
	t, err := k.d.openTarget(ctx, p.Service, p.Database, false)
	if err != nil {
		return action.Result{}, err
	}
	defer t.db.Close()
	c := change{actionID: a.ID, engine: t.engine, table: st.Table, alias: st.Alias, verb: st.Verb, keyCols: plan.Key,
		apply: st.Text, wantCount: plan.Count}
	if st.Verb != "INSERT" {
		c.lockQuery, c.lockIsImage, c.wantKeysHash = st.lockQuery(), true, plan.KeysHash
	}
	out, err := k.d.run(ctx, t, c)
	res := action.Result{
		Summary: fmt.Sprintf("guarded SQL on %s/%s: %s %d row(s) of %s; before- and after-images kept", p.Service, p.Database, st.Verb, out.Rows, st.Table),
		Details: toMap(out),
	}
	if err != nil {
		res.Summary = fmt.Sprintf("guarded SQL on %s/%s not applied: %v", p.Service, p.Database, err)
	}
	return res, err
}

// Verify checks that every image was recorded as applied.
func (k *SQLKind) Verify(ctx context.Context, a *action.Action, r action.Result) error {
	return verifyImages(ctx, k.d, a, r)
}
