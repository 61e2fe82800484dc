package fix

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stewardhq/steward/internal/action"
)

// Kind names.
const (
	ApplyKindName = "fix.apply"
	UndoKindName  = "fix.undo"
	SQLKindName   = "sql.exec"
)

// ApplyKind is the fix.apply action kind: a configured fix with its
// parameters, applied in one guarded transaction.
type ApplyKind struct{ d *Deps }

// UndoKind is the fix.undo action kind: restore the before-images of an
// earlier fix.apply, sql.exec or fix.undo, row by row where nobody changed
// the row since.
type UndoKind struct{ d *Deps }

// SQLKind is the sql.exec action kind: one reviewed DML statement, guarded
// like a fix.
type SQLKind struct{ d *Deps }

var (
	_ action.Kind = (*ApplyKind)(nil)
	_ action.Kind = (*UndoKind)(nil)
	_ action.Kind = (*SQLKind)(nil)
)

// NewApplyKind returns the fix.apply kind.
func NewApplyKind(d *Deps) *ApplyKind { return &ApplyKind{d} }

// NewUndoKind returns the fix.undo kind.
func NewUndoKind(d *Deps) *UndoKind { return &UndoKind{d} }

// NewSQLKind returns the sql.exec kind.
func NewSQLKind(d *Deps) *SQLKind { return &SQLKind{d} }

// Name implements action.Kind.
func (k *ApplyKind) Name() string { return ApplyKindName }

func parseParams(a *action.Action, v any) error {
	if err := json.Unmarshal(a.Params, v); err != nil {
		return fmt.Errorf("%w: %v", action.ErrBadParams, err)
	}
	return nil
}

func (k *ApplyKind) params(a *action.Action) (ApplyParams, error) {
	var p ApplyParams
	if err := parseParams(a, &p); err != nil {
		return p, err
	}
	if p.Service == "" {
		p.Service = a.Service
	}
	if p.Service != a.Service {
		return p, fmt.Errorf("%w: params name service %q but the action is for %q", action.ErrBadParams, p.Service, a.Service)
	}
	return p, nil
}

// Plan runs the fix's select read-only: the rows, masked, and their keys.
func (k *ApplyKind) Plan(ctx context.Context, a *action.Action) (action.Plan, error) {
	p, err := k.params(a)
	if err != nil {
		return action.Plan{}, err
	}
	pv, err := k.d.PlanFix(ctx, p)
	if err != nil {
		return action.Plan{}, err
	}
	return action.Plan{
		Summary: fmt.Sprintf("fix %s/%s: %s %d row(s) of %s on %s", pv.Service, pv.Fix, pv.Verb, pv.Count, pv.Table, pv.Database),
		Details: toMap(pv),
		Facts:   map[string]any{"rows_affected": pv.Count, "max_rows": pv.MaxRows, "verb": pv.Verb, "table": pv.Table, "database": pv.Database},
		Risk:    risk(pv.Verb, pv.Count),
	}, nil
}

// Execute applies the fix in one transaction, guarded against the plan.
func (k *ApplyKind) Execute(ctx context.Context, a *action.Action) (action.Result, error) {
	p, err := k.params(a)
	if err != nil {
		return action.Result{}, err
	}
	var pv Preview
	if err := remarshal(a.Plan.Details, &pv); err != nil || pv.KeysHash == "" {
		return action.Result{}, fmt.Errorf("%w: the approved plan has no key set", action.ErrBadParams)
	}
	svc := k.d.Config().Service(p.Service)
	if svc == nil || svc.Fix(p.Fix) == nil {
		return action.Result{}, fmt.Errorf("%w %s/%s", ErrUnknownFix, p.Service, p.Fix)
	}
	f := svc.Fix(p.Fix)
	engine := k.d.engineOf(p.Service, f.Database)
	r, err := k.d.resolve(p.Service, p.Fix, p.Params, engine)
	if err != nil {
		return action.Result{}, err
	}
	t, err := k.d.openTarget(ctx, p.Service, f.Database, false)
	if err != nil {
		return action.Result{}, err
	}
	defer t.db.Close()
	out, err := k.d.run(ctx, t, change{
		actionID: a.ID, engine: engine, table: r.stmt.Table, alias: r.stmt.Alias, verb: r.stmt.Verb, keyCols: r.keyCols,
		lockQuery: r.sel, lockArgs: r.selArgs, apply: r.apply, applyArgs: r.appArgs,
		wantCount: pv.Count, wantKeysHash: pv.KeysHash,
	})
	res := action.Result{
		Summary: fmt.Sprintf("fix %s/%s: %s %d row(s) of %s; before- and after-images kept", p.Service, p.Fix, r.stmt.Verb, out.Rows, r.stmt.Table),
		Details: toMap(out),
	}
	if err != nil {
		res.Summary = fmt.Sprintf("fix %s/%s not applied: %v", p.Service, p.Fix, err)
		return res, err
	}
	return res, nil
}

// Verify checks that every image was recorded as applied, then runs the
// Applied hook.
func (k *ApplyKind) Verify(ctx context.Context, a *action.Action, r action.Result) error {
	if err := verifyImages(ctx, k.d, a, r); err != nil {
		return err
	}
	if k.d.Applied != nil {
		if p, err := k.params(a); err == nil {
			k.d.Applied(ctx, a, p)
		}
	}
	return nil
}

func verifyImages(ctx context.Context, d *Deps, a *action.Action, r action.Result) error {
	total, pending, err := d.Store.CountFixImages(ctx, a.ID)
	if err != nil {
		return err
	}
	want, _ := r.Details["images"].(float64)
	if pending > 0 || total != int(want) {
		return fmt.Errorf("%w: action %d has %d images, %d pending, %d expected", ErrImagesPending, a.ID, total, pending, int(want))
	}
	return nil
}

func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
