package fix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/store"
)

// UndoParams are the parameters of a fix.undo action.
type UndoParams struct {
	ActionID int64 `json:"action_id"`
}

// UndoPlan is what an undo would restore, and what it would leave alone.
type UndoPlan struct {
	Of        int64      `json:"of_action"`
	OfKind    string     `json:"of_kind"`
	Service   string     `json:"service"`
	Database  string     `json:"database"`
	Engine    string     `json:"engine"`
	Table     string     `json:"table"`
	Key       []string   `json:"key"`
	Count     int        `json:"rows_affected"`
	KeysHash  string     `json:"keys_sha256"`
	Keys      []string   `json:"keys,omitempty"` // up to previewKeys
	Conflicts []Conflict `json:"conflicts"`
}

// Conflict is a row changed since the action: undo leaves it alone.
type Conflict struct {
	Key string `json:"key"`
	Why string `json:"why"`
}

// imageTarget is where an earlier action's images belong.
type imageTarget struct {
	Service  string   `json:"service"`
	Database string   `json:"database"`
	Table    string   `json:"table"`
	Key      []string `json:"key"`
}

// Name implements action.Kind.
func (k *UndoKind) Name() string { return UndoKindName }

// Images returns an action's images, decrypted, each before and after a
// JSON object (column -> value) or null.
func (d *Deps) Images(ctx context.Context, actionID int64) ([]store.FixImage, error) {
	imgs, err := d.Store.ListFixImages(ctx, actionID)
	if err != nil || len(imgs) == 0 {
		return imgs, err
	}
	var columns []string
	set, err := d.Store.GetFixImageSet(ctx, actionID)
	switch {
	case err == nil:
		columns = set.Columns
	case !errors.Is(err, store.ErrNotFound): // no set: images from before sets, objects
		return nil, err
	}
	for i := range imgs {
		if imgs[i].Encrypted {
			if imgs[i].Before, err = d.Crypt.open(imgs[i].Before); err != nil {
				return nil, err
			}
			if imgs[i].After != nil {
				a, err := d.Crypt.open(*imgs[i].After)
				if err != nil {
					return nil, err
				}
				imgs[i].After = &a
			}
			imgs[i].Encrypted = false
		}
		if columns == nil {
			continue
		}
		var after string
		if imgs[i].After != nil {
			after = *imgs[i].After
		}
		before, after, err := expandImage(columns, imgs[i].Before, after)
		if err != nil {
			return nil, fmt.Errorf("action %d: images of row %s: %w", actionID, imgs[i].RowKey, err)
		}
		imgs[i].Before = before
		if imgs[i].After != nil {
			imgs[i].After = &after
		}
	}
	return imgs, nil
}

// undoSource loads the action to undo, where its rows live, and its images.
func (d *Deps) undoSource(ctx context.Context, a *action.Action) (UndoParams, store.ActionRow, imageTarget, []store.FixImage, error) {
	var p UndoParams
	var tgt imageTarget
	if err := parseParams(a, &p); err != nil {
		return p, store.ActionRow{}, tgt, nil, err
	}
	if p.ActionID <= 0 {
		return p, store.ActionRow{}, tgt, nil, fmt.Errorf("%w: fix.undo needs action_id, the action to undo", action.ErrBadParams)
	}
	orig, err := d.Store.GetAction(ctx, p.ActionID)
	if err != nil {
		return p, orig, tgt, nil, err
	}
	switch orig.Kind {
	case ApplyKindName, SQLKindName, UndoKindName:
	default:
		return p, orig, tgt, nil, fmt.Errorf("%w: action %d is %s; only fix.apply, sql.exec and fix.undo can be undone", action.ErrBadParams, orig.ID, orig.Kind)
	}
	if orig.Service != a.Service {
		return p, orig, tgt, nil, fmt.Errorf("%w: action %d is for service %q, not %q", action.ErrBadParams, orig.ID, orig.Service, a.Service)
	}
	var plan action.Plan
	if err := json.Unmarshal([]byte(orig.PlanDetails), &plan); err != nil {
		return p, orig, tgt, nil, fmt.Errorf("action %d: plan: %w", orig.ID, err)
	}
	if err := remarshal(plan.Details, &tgt); err != nil || tgt.Table == "" || len(tgt.Key) == 0 {
		return p, orig, tgt, nil, fmt.Errorf("action %d: its plan does not say which table it changed", orig.ID)
	}
	imgs, err := d.Images(ctx, orig.ID)
	if err != nil {
		return p, orig, tgt, nil, err
	}
	for _, im := range imgs {
		if im.Pending() {
			return p, orig, tgt, nil, fmt.Errorf("%w: action %d never recorded its after-images, so it is unknown whether its change committed; compare the rows with `steward fix images %d` before doing anything", ErrImagesPending, orig.ID, orig.ID)
		}
	}
	if len(imgs) == 0 {
		return p, orig, tgt, nil, fmt.Errorf("%w: action %d (%s) changed no rows", ErrNothingToUndo, orig.ID, orig.State)
	}
	return p, orig, tgt, imgs, nil
}

// assess compares the current rows with the after-images: rows still
// equal can be restored, others are conflicts.
func assess(ctx context.Context, q querier, engine string, tgt imageTarget, imgs []store.FixImage, lock bool) (restore []store.FixImage, current map[string]string, conflicts []Conflict, err error) {
	keys := make([]string, len(imgs))
	for i, im := range imgs {
		keys[i] = im.RowKey
	}
	rs, err := selectByKeys(ctx, q, engine, tgt.Table, tgt.Key, keys, lock)
	if err != nil {
		return nil, nil, nil, err
	}
	current = map[string]string{}
	if len(rs.rows) > 0 {
		idx, err := rs.colIndex(tgt.Key)
		if err != nil {
			return nil, nil, nil, err
		}
		for i, row := range rs.rows {
			current[keyOf(row, idx)] = mustJSON(rs.object(i))
		}
	}
	for _, im := range imgs {
		cur, exists := current[im.RowKey]
		switch {
		case *im.After == "null" && exists:
			conflicts = append(conflicts, Conflict{im.RowKey, "deleted by the action, and a row with this key exists again"})
		case *im.After != "null" && !exists:
			conflicts = append(conflicts, Conflict{im.RowKey, "deleted since the action"})
		case *im.After != "null" && !sameJSON(cur, *im.After):
			conflicts = append(conflicts, Conflict{im.RowKey, "changed since the action"})
		default:
			restore = append(restore, im)
		}
	}
	return restore, current, conflicts, nil
}

// sameJSON compares two JSON objects by value.
func sameJSON(a, b string) bool {
	if a == b {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return mustJSON(x) == mustJSON(y)
}

// Plan lists the rows the undo restores and the conflicts it leaves.
func (k *UndoKind) Plan(ctx context.Context, a *action.Action) (action.Plan, error) {
	p, orig, tgt, imgs, err := k.d.undoSource(ctx, a)
	if err != nil {
		return action.Plan{}, err
	}
	engine := k.d.engineOf(tgt.Service, tgt.Database)
	t, err := k.d.openTarget(ctx, tgt.Service, tgt.Database, true)
	if err != nil {
		return action.Plan{}, err
	}
	defer t.db.Close()
	restore, _, conflicts, err := assess(ctx, t.db, engine, tgt, imgs, false)
	if err != nil {
		return action.Plan{}, err
	}
	up := UndoPlan{Of: p.ActionID, OfKind: orig.Kind, Service: tgt.Service, Database: tgt.Database, Engine: engine, Table: tgt.Table, Key: tgt.Key,
		Count: len(restore), Conflicts: conflicts}
	if up.Conflicts == nil {
		up.Conflicts = []Conflict{}
	}
	keys := make([]string, len(restore))
	for i, im := range restore {
		keys[i] = im.RowKey
	}
	up.KeysHash = keysHash(keys)
	if len(keys) > previewKeys {
		keys = keys[:previewKeys]
	}
	up.Keys = keys
	if len(restore) == 0 {
		return action.Plan{}, fmt.Errorf("%w: all %d rows of action %d changed since (%s)", ErrNothingToUndo, len(imgs), p.ActionID, conflictText(conflicts))
	}
	summary := fmt.Sprintf("undo action %d (%s): restore %d row(s) of %s", p.ActionID, orig.Kind, len(restore), tgt.Table)
	if len(conflicts) > 0 {
		summary += fmt.Sprintf("; %d row(s) changed since are left alone", len(conflicts))
	}
	return action.Plan{
		Summary: summary,
		Details: toMap(up),
		Facts:   map[string]any{"rows_affected": len(restore), "conflicts": len(conflicts), "undo_of": p.ActionID, "table": tgt.Table, "database": tgt.Database},
		Risk:    risk("UPDATE", len(restore)),
	}, nil
}

func conflictText(cs []Conflict) string {
	var parts []string
	for i, c := range cs {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(cs)-5))
			break
		}
		parts = append(parts, c.Key+": "+c.Why)
	}
	return strings.Join(parts, "; ")
}

// Execute restores the before-images in one transaction, only for rows
// still equal to their after-image; it keeps images of its own, so an undo
// can be undone.
func (k *UndoKind) Execute(ctx context.Context, a *action.Action) (action.Result, error) {
	var up UndoPlan
	if err := remarshal(a.Plan.Details, &up); err != nil || up.KeysHash == "" {
		return action.Result{}, fmt.Errorf("%w: the approved plan has no key set", action.ErrBadParams)
	}
	_, _, tgt, imgs, err := k.d.undoSource(ctx, a)
	if err != nil {
		return action.Result{}, err
	}
	t, err := k.d.openTarget(ctx, tgt.Service, tgt.Database, false)
	if err != nil {
		return action.Result{}, err
	}
	defer t.db.Close()
	out, conflicts, err := k.d.undo(ctx, t, a.ID, tgt, imgs, up)
	res := action.Result{
		Summary: fmt.Sprintf("undo action %d: restored %d row(s) of %s, %d conflict(s) left alone", up.Of, out.Rows, tgt.Table, len(conflicts)),
		Details: toMap(out),
	}
	res.Details["conflicts"] = conflicts
	if err != nil {
		res.Summary = fmt.Sprintf("undo of action %d not applied: %v", up.Of, err)
	}
	return res, err
}

func (d *Deps) undo(ctx context.Context, t *target, actionID int64, tgt imageTarget, imgs []store.FixImage, up UndoPlan) (outcome, []Conflict, error) {
	tx, err := d.begin(ctx, t)
	if err != nil {
		return outcome{}, nil, err
	}
	g := &guard{d: d, tx: tx, actionID: actionID}
	defer g.close()
	restore, current, conflicts, err := assess(ctx, tx, t.engine, tgt, imgs, true)
	if err != nil {
		return outcome{}, nil, err
	}
	keys := make([]string, len(restore))
	for i, im := range restore {
		keys[i] = im.RowKey
	}
	if keysHash(keys) != up.KeysHash || len(keys) != up.Count {
		return outcome{}, conflicts, fmt.Errorf("%w: %d rows were approved for restoring and %d can be restored now; nothing was changed", ErrDataChanged, up.Count, len(keys))
	}
	if err := g.hook(ctx, StepLocked); err != nil {
		return outcome{}, conflicts, err
	}
	for _, im := range restore {
		if err := restoreRow(ctx, tx, t.engine, tgt, im); err != nil {
			return outcome{}, conflicts, err
		}
	}
	if err := g.hook(ctx, StepApplied); err != nil {
		return outcome{}, conflicts, err
	}
	// The undo's own images: before = the rows as found, after = restored.
	var live []string
	for _, im := range restore {
		if im.Before != "null" {
			live = append(live, im.RowKey)
		}
	}
	after, err := selectByKeys(ctx, tx, t.engine, tgt.Table, tgt.Key, live, false)
	if err != nil {
		return outcome{}, conflicts, err
	}
	afterByKey := map[string]string{}
	if len(after.rows) > 0 {
		idx, err := after.colIndex(tgt.Key)
		if err != nil {
			return outcome{}, conflicts, err
		}
		for i, row := range after.rows {
			afterByKey[keyOf(row, idx)] = mustJSON(after.object(i))
		}
	}
	own := make([]image, 0, len(restore))
	for _, im := range restore {
		before, ok := current[im.RowKey]
		if !ok {
			before = "null"
		}
		a, ok := afterByKey[im.RowKey]
		if !ok {
			a = "null"
		}
		own = append(own, image{key: im.RowKey, before: before, after: a})
	}
	// Undo images are JSON objects (no column list).
	if err := g.write(ctx, nil, own); err != nil {
		return outcome{}, conflicts, err
	}
	stored, err := g.commit(ctx)
	out := outcome{Rows: len(restore), Images: stored}
	if err != nil {
		return out, conflicts, err
	}
	for i, k := range keys {
		if i == previewKeys {
			break
		}
		out.Keys = append(out.Keys, k)
	}
	return out, conflicts, nil
}

// restoreRow puts one row back as its before-image says.
func restoreRow(ctx context.Context, q querier, engine string, tgt imageTarget, im store.FixImage) error {
	keyVals, err := keyArgs(im.RowKey)
	if err != nil {
		return err
	}
	var query string
	var args []any
	switch {
	case im.Before == "null": // the action inserted the row
		query = "DELETE FROM " + tgt.Table + " WHERE " + keyEquals(engine, tgt.Key, 0)
		args = keyVals
	default:
		dec := json.NewDecoder(strings.NewReader(im.Before))
		dec.UseNumber()
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			return fmt.Errorf("before-image of %s: %w", im.RowKey, err)
		}
		cols := sortedKeys(row)
		if *im.After == "null" { // the action deleted the row
			ph := make([]string, len(cols))
			qc := make([]string, len(cols))
			for i, c := range cols {
				qc[i], ph[i] = dbx.QuoteIdent(engine, c), dbx.Placeholder(engine, i+1)
				args = append(args, bindValue(row[c]))
			}
			query = "INSERT INTO " + tgt.Table + " (" + strings.Join(qc, ", ") + ") VALUES (" + strings.Join(ph, ", ") + ")"
		} else {
			var sets []string
			for _, c := range cols {
				if containsFold(tgt.Key, c) {
					continue
				}
				sets = append(sets, dbx.QuoteIdent(engine, c)+" = "+dbx.Placeholder(engine, len(args)+1))
				args = append(args, bindValue(row[c]))
			}
			if len(sets) == 0 {
				return nil // only key columns: nothing can differ
			}
			query = "UPDATE " + tgt.Table + " SET " + strings.Join(sets, ", ") + " WHERE " + keyEquals(engine, tgt.Key, len(args))
			args = append(args, keyVals...)
		}
	}
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("restore row %s of %s: %w", im.RowKey, tgt.Table, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w: restoring row %s of %s changed %d rows, not 1; rolled back", ErrRowCount, im.RowKey, tgt.Table, n)
	}
	return nil
}

// Verify checks that every image was recorded as applied.
func (k *UndoKind) Verify(ctx context.Context, a *action.Action, r action.Result) error {
	return verifyImages(ctx, k.d, a, r)
}
