package fix

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/store"
)

// Deps is what the fix kinds need. Config and Store are required.
type Deps struct {
	// Config returns the current config (it follows reloads).
	Config func() *config.Config
	// Store keeps the before- and after-images.
	Store  *store.Store
	Logger *slog.Logger
	// Crypt, when it has recipients, encrypts images at rest.
	Crypt *Crypt
	// Hook, when set, runs at each step of a change (see Steps); an error
	// stops the change there the way a killed process would: the target
	// transaction is rolled back by the database, nothing is cleaned up.
	Hook func(ctx context.Context, step string) error
	// LockTimeout bounds waiting for row locks (default 10s).
	LockTimeout time.Duration
	// Applied, when set, runs after a fix.apply action's change committed
	// and its images verified (in the kind's Verify step, so on every path
	// that executes actions: CLI, server, API). It cannot fail the action;
	// it reports its own errors. Steward uses it to re-run the check a fix
	// was proposed for (ApplyParams.Check) and link the run to the action.
	Applied func(ctx context.Context, a *action.Action, p ApplyParams)
}

// Steps of a change, in order, as passed to Deps.Hook.
const (
	StepLocked        = "locked"         // rows locked and checked against the plan, before-images read
	StepApplied       = "applied"        // statement executed, row count checked; nothing committed anywhere
	StepImagesPending = "images-pending" // before- and after-images committed to the store, pending; target not committed
	StepCommitted     = "committed"      // target committed; images still pending
	StepImagesApplied = "images-applied" // images confirmed
)

func (d *Deps) log() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

func (d *Deps) hook(ctx context.Context, step string) error {
	if d.Hook == nil {
		return nil
	}
	if err := d.Hook(ctx, step); err != nil {
		return fmt.Errorf("stopped at step %s: %w", step, err)
	}
	return nil
}

func (d *Deps) lockTimeout() time.Duration {
	if d.LockTimeout > 0 {
		return d.LockTimeout
	}
	return 10 * time.Second
}

// target is an open service database.
type target struct {
	engine string
	db     *sql.DB
}

// openTarget opens a service's database. Writes on SQLite take the write
// lock at BEGIN (BEGIN IMMEDIATE); on MySQL, affected rows count matched
// rows, not only changed ones, so counts mean the same on every engine.
func (d *Deps) openTarget(ctx context.Context, service, database string, readOnly bool) (*target, error) {
	svc := d.Config().Service(service)
	if svc == nil {
		return nil, fmt.Errorf("%w: no service %q", ErrUnknownFix, service)
	}
	db := svc.Database(database)
	if db == nil {
		return nil, fmt.Errorf("%w: service %s has no database %q", ErrUnknownFix, service, database)
	}
	url, err := db.URL.Resolve()
	if err != nil {
		return nil, fmt.Errorf("database %s/%s: %w", service, database, err)
	}
	driver, dsn, err := dbx.DriverDSN(db.Engine, url, readOnly)
	if err != nil {
		return nil, fmt.Errorf("database %s/%s: %w", service, database, err)
	}
	switch db.Engine {
	case dbx.SQLite:
		if !readOnly {
			dsn += "&_txlock=immediate"
		}
	case dbx.MySQL:
		dsn += "&clientFoundRows=true"
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s/%s: %w", service, database, err)
	}
	conn.SetMaxOpenConns(2)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := conn.PingContext(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to database %s/%s (%s): %w", service, database, db.Engine, err)
	}
	return &target{engine: db.Engine, db: conn}, nil
}

// begin starts the guarded transaction with a lock timeout.
func (d *Deps) begin(ctx context.Context, t *target) (*sql.Tx, error) {
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	ms := d.lockTimeout().Milliseconds()
	var q string
	switch t.engine {
	case dbx.Postgres:
		q = fmt.Sprintf("SET LOCAL lock_timeout = %d", ms)
	case dbx.MySQL:
		q = fmt.Sprintf("SET SESSION innodb_lock_wait_timeout = %d", max(1, ms/1000))
	}
	if q != "" {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			tx.Rollback() //nolint:errcheck
			return nil, fmt.Errorf("set lock timeout: %w", err)
		}
	}
	return tx, nil
}

// ApplyParams are the parameters of a fix.apply action.
type ApplyParams struct {
	Service string            `json:"service"`
	Fix     string            `json:"fix"`
	Params  map[string]string `json:"params"`
	// Check, when set, is the check of Service whose violations the fix
	// was proposed for (steward check propose-fix); it re-runs after the
	// fix is applied.
	Check string `json:"check,omitempty"`
}

// Preview is what a fix would change: the plan shown for review.
type Preview struct {
	Service  string            `json:"service"`
	Fix      string            `json:"fix"`
	Database string            `json:"database"`
	Engine   string            `json:"engine"`
	Table    string            `json:"table"`
	Verb     string            `json:"verb"`
	Key      []string          `json:"key"`
	Params   map[string]string `json:"params"`
	Select   string            `json:"select"`
	Apply    string            `json:"apply"`
	MaxRows  int               `json:"max_rows"`
	Count    int               `json:"count"`
	// Keys of the selected rows (all of them up to previewKeys) and their
	// hash over the whole set: the plan hash changes when the rows change.
	Keys     []string         `json:"keys"`
	KeysHash string           `json:"keys_sha256"`
	Columns  []string         `json:"columns"`
	Rows     []map[string]any `json:"rows"` // masked, at most previewRows
}

const (
	previewRows = 20
	previewKeys = 1000
)

// resolved is a fix with its parameters bound.
type resolved struct {
	fix     *config.Fix
	svc     string
	stmt    Statement
	keyCols []string
	sel     string
	selArgs []any
	apply   string
	appArgs []any
}

func (d *Deps) resolve(service, name string, raw map[string]string, engine string) (*resolved, error) {
	svc := d.Config().Service(service)
	if svc == nil {
		return nil, fmt.Errorf("%w: no service %q", ErrUnknownFix, service)
	}
	f := svc.Fix(name)
	if f == nil {
		var names []string
		for _, x := range svc.Fixes {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("%w %s/%s (fixes of %s: %s)", ErrUnknownFix, service, name, service, strings.Join(names, ", "))
	}
	vals, err := ParseParams(f.Params, raw)
	if err != nil {
		return nil, fmt.Errorf("fix %s/%s: %w", service, name, err)
	}
	r := &resolved{fix: f, svc: service, keyCols: f.Key}
	if len(r.keyCols) == 0 {
		r.keyCols = []string{"id"}
	}
	if r.stmt, err = ParseStatement(engine, f.Apply); err != nil {
		return nil, fmt.Errorf("fix %s/%s apply: %w", service, name, err)
	}
	sel, err := SingleQuery(engine, f.Select)
	if err != nil {
		return nil, fmt.Errorf("fix %s/%s select: %w", service, name, err)
	}
	if r.sel, r.selArgs, err = Bind(engine, sel, vals); err != nil {
		return nil, fmt.Errorf("fix %s/%s select: %w", service, name, err)
	}
	if r.apply, r.appArgs, err = Bind(engine, r.stmt.Text, vals); err != nil {
		return nil, fmt.Errorf("fix %s/%s apply: %w", service, name, err)
	}
	r.selArgs, r.appArgs = engineArgs(engine, r.selArgs), engineArgs(engine, r.appArgs)
	return r, nil
}

func (d *Deps) engineOf(service, database string) string {
	if s := d.Config().Service(service); s != nil {
		if db := s.Database(database); db != nil {
			return db.Engine
		}
	}
	return ""
}

// PlanFix runs the fix's select read-only and returns the preview. It
// refuses when no row matches (ErrNothingToFix) or more than max_rows do
// (ErrTooManyRows).
func (d *Deps) PlanFix(ctx context.Context, p ApplyParams) (*Preview, error) {
	svc := d.Config().Service(p.Service)
	if svc == nil {
		return nil, fmt.Errorf("%w: no service %q", ErrUnknownFix, p.Service)
	}
	f := svc.Fix(p.Fix)
	if f == nil {
		_, err := d.resolve(p.Service, p.Fix, p.Params, "")
		return nil, err
	}
	engine := d.engineOf(p.Service, f.Database)
	r, err := d.resolve(p.Service, p.Fix, p.Params, engine)
	if err != nil {
		return nil, err
	}
	t, err := d.openTarget(ctx, p.Service, f.Database, true)
	if err != nil {
		return nil, err
	}
	defer t.db.Close()
	var opts *sql.TxOptions
	if engine != dbx.SQLite { // the SQLite connection itself is read-only
		opts = &sql.TxOptions{ReadOnly: true}
	}
	tx, err := t.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("fix %s/%s: begin read-only: %w", p.Service, p.Fix, err)
	}
	defer tx.Rollback() //nolint:errcheck
	rs, err := queryRows(ctx, tx, engine, r.sel, r.selArgs...)
	if err != nil {
		return nil, fmt.Errorf("fix %s/%s: run select: %w", p.Service, p.Fix, err)
	}
	idx, err := rs.colIndex(r.keyCols)
	if err != nil {
		return nil, fmt.Errorf("fix %s/%s select: %w", p.Service, p.Fix, err)
	}
	pv := &Preview{Service: p.Service, Fix: p.Fix, Database: f.Database, Engine: engine, Table: r.stmt.Table, Verb: r.stmt.Verb,
		Key: r.keyCols, Params: p.Params, Select: f.Select, Apply: f.Apply, MaxRows: f.MaxRows, Count: len(rs.rows), Columns: rs.cols}
	if pv.Params == nil {
		pv.Params = map[string]string{}
	}
	keys := make([]string, len(rs.rows))
	order := make([]int, len(rs.rows))
	for i, row := range rs.rows {
		keys[i], order[i] = keyOf(row, idx), i
	}
	sort.SliceStable(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	pv.KeysHash = keysHash(keys)
	for n, i := range order {
		if n < previewKeys {
			pv.Keys = append(pv.Keys, keys[i])
		}
		if n < previewRows {
			obj := rs.object(i)
			for _, m := range f.Mask {
				for c := range obj {
					if strings.EqualFold(c, m) {
						obj[c] = maskValue(obj[c])
					}
				}
			}
			pv.Rows = append(pv.Rows, obj)
		}
	}
	if pv.Count == 0 {
		return pv, fmt.Errorf("%w: fix %s/%s selects no rows with these parameters", ErrNothingToFix, p.Service, p.Fix)
	}
	if pv.Count > f.MaxRows {
		return pv, fmt.Errorf("%w: fix %s/%s selects %d rows, more than its max_rows %d; narrow the parameters or raise max_rows in review", ErrTooManyRows, p.Service, p.Fix, pv.Count, f.MaxRows)
	}
	return pv, nil
}

// risk grows with the number of rows and with deletion.
func risk(verb string, n int) string {
	levels := []string{action.RiskLow, action.RiskMedium, action.RiskHigh, action.RiskCritical}
	l := 0
	switch {
	case n > 1000:
		l = 2
	case n > 10:
		l = 1
	}
	if verb == "DELETE" {
		l++
	}
	return levels[min(l, 3)]
}

// toMap turns a struct into the map action plans carry.
func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
