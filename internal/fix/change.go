package fix

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/store"
)

// change is one guarded data change: lock the rows, check them against the
// approved plan, keep their before-images, run the statement, check the
// row count, keep the after-images, commit.
type change struct {
	actionID int64
	engine   string
	table    string
	verb     string
	keyCols  []string
	// lockQuery selects the rows the change may touch (with their keys);
	// FOR UPDATE is added on PostgreSQL and MySQL (SQLite holds the write
	// lock from BEGIN IMMEDIATE). Empty: an INSERT with nothing to lock.
	lockQuery string
	lockArgs  []any
	// lockIsImage: lockQuery returns whole rows of table (guarded SQL), so
	// they are the before-images.
	lockIsImage bool
	apply       string
	applyArgs   []any
	// wantCount is the approved row count; wantKeysHash the approved key
	// set ("" when there is no lock query).
	wantCount    int
	wantKeysHash string
}

// image is one row's before/after JSON ("null": no row).
type image struct {
	key, before, after string
}

// outcome is what a change did.
type outcome struct {
	Rows   int      `json:"rows_affected"`
	Keys   []string `json:"keys,omitempty"` // up to previewKeys
	Images int      `json:"images"`
}

// run executes the change in one transaction; see docs/integrity.md for
// the order of the steps and what a crash at each one leaves behind.
func (d *Deps) run(ctx context.Context, t *target, c change) (outcome, error) {
	tx, err := d.begin(ctx, t)
	if err != nil {
		return outcome{}, err
	}
	g := &guard{d: d, tx: tx, actionID: c.actionID}
	defer g.close(ctx)

	// 1. Lock, and check the locked rows are the approved ones.
	var keys []string
	var before rowset
	if c.lockQuery != "" {
		q := c.lockQuery
		if t.engine != dbx.SQLite {
			q += "\nFOR UPDATE"
		}
		rs, err := queryRows(ctx, tx, t.engine, q, c.lockArgs...)
		if err != nil {
			return outcome{}, fmt.Errorf("lock rows: %w", err)
		}
		idx, err := rs.colIndex(c.keyCols)
		if err != nil {
			return outcome{}, err
		}
		for _, row := range rs.rows {
			keys = append(keys, keyOf(row, idx))
		}
		if len(keys) != c.wantCount || (c.wantKeysHash != "" && keysHash(keys) != c.wantKeysHash) {
			return outcome{}, fmt.Errorf("%w: %d rows were approved and %d match now (or other rows); nothing was changed", ErrDataChanged, c.wantCount, len(keys))
		}
		if c.lockIsImage {
			before = rs
		}
	}
	if c.verb != "INSERT" && !c.lockIsImage {
		before, err = selectByKeys(ctx, tx, t.engine, c.table, c.keyCols, keys, true)
		if err != nil {
			return outcome{}, err
		}
		if len(before.rows) != len(keys) {
			return outcome{}, fmt.Errorf("%w: the select returned %d keys but only %d are rows of %s; the select's key must be %s's key", ErrStatement, len(keys), len(before.rows), c.table, c.table)
		}
	}
	if err := g.hook(ctx, StepLocked); err != nil {
		return outcome{}, err
	}
	if c.verb != "INSERT" {
		// The before-images are known: store them, pending, while the
		// database executes the statement.
		bidx, err := before.colIndex(c.keyCols)
		if err != nil {
			return outcome{}, err
		}
		g.startPending(ctx, func() []image {
			imgs := make([]image, len(before.rows))
			for i, row := range before.rows {
				imgs[i] = image{key: keyOf(row, bidx), before: mustJSON(before.object(i))}
			}
			return imgs
		})
	}

	// 2. Apply, and check the row count.
	var n int
	var inserted rowset
	if c.verb == "INSERT" {
		inserted, err = queryRows(ctx, tx, t.engine, c.apply+"\nRETURNING *", c.applyArgs...)
		if err != nil {
			return outcome{}, fmt.Errorf("apply: %w", err)
		}
		n = len(inserted.rows)
	} else {
		res, err := tx.ExecContext(ctx, c.apply, c.applyArgs...)
		if err != nil {
			return outcome{}, fmt.Errorf("apply: %w", err)
		}
		affected, err := res.RowsAffected()
		if err != nil {
			return outcome{}, fmt.Errorf("apply: %w", err)
		}
		n = int(affected)
	}
	if n != c.wantCount {
		return outcome{}, fmt.Errorf("%w: the statement changed %d rows, %d were approved; rolled back, nothing was changed", ErrRowCount, n, c.wantCount)
	}
	if err := g.hook(ctx, StepApplied); err != nil {
		return outcome{}, err
	}

	// 3. Images.
	var imgs []image
	switch c.verb {
	case "INSERT":
		idx, err := inserted.colIndex(c.keyCols)
		if err != nil {
			return outcome{}, fmt.Errorf("inserted rows: %w", err)
		}
		for i, row := range inserted.rows {
			imgs = append(imgs, image{key: keyOf(row, idx), before: "null", after: mustJSON(inserted.object(i))})
		}
	default:
		bidx, err := before.colIndex(c.keyCols)
		if err != nil {
			return outcome{}, err
		}
		afterByKey := map[string]string{}
		if c.verb == "UPDATE" {
			bkeys := make([]string, len(before.rows))
			for i, row := range before.rows {
				bkeys[i] = keyOf(row, bidx)
			}
			after, err := selectByKeys(ctx, tx, t.engine, c.table, c.keyCols, bkeys, false)
			if err != nil {
				return outcome{}, err
			}
			aidx, err := after.colIndex(c.keyCols)
			if err != nil {
				return outcome{}, err
			}
			for i, row := range after.rows {
				afterByKey[keyOf(row, aidx)] = mustJSON(after.object(i))
			}
		}
		for i, row := range before.rows {
			k := keyOf(row, bidx)
			a := "null"
			if c.verb == "UPDATE" {
				var ok bool
				if a, ok = afterByKey[k]; !ok {
					return outcome{}, fmt.Errorf("%w: row %s of %s is gone after the update; an apply statement must not change key columns", ErrStatement, k, c.table)
				}
			}
			imgs = append(imgs, image{key: k, before: mustJSON(before.object(i)), after: a})
		}
	}
	out := outcome{Rows: n, Images: len(imgs)}
	if err := g.commit(ctx, imgs); err != nil {
		return out, err
	}
	for i, im := range imgs {
		if i == previewKeys {
			break
		}
		out.Keys = append(out.Keys, im.key)
	}
	return out, nil
}

// guard carries a target transaction through the image protocol:
//
//  1. the before-images are written to the store, marked pending;
//  2. the target transaction commits;
//  3. the images are replaced by the complete ones (before and after).
//
// A crash between 1 and 3 leaves a pending set: its before-images are
// safe, and whether the change committed must be checked. An error before
// the commit rolls the target back and removes the pending set (it
// describes nothing); a stop from the test hook skips that clean-up, as a
// killed process would.
type guard struct {
	d        *Deps
	tx       *sql.Tx
	actionID int64

	pending   bool       // pending images written
	written   chan error // result of the pending write started by startPending
	committed bool       // target committed
	unknown   bool       // commit outcome unknown
	killed    bool       // stopped by the hook
}

func (g *guard) hook(ctx context.Context, step string) error {
	if err := g.d.hook(ctx, step); err != nil {
		g.killed = true
		return err
	}
	return nil
}

// startPending writes the pending before-images in the background; commit
// (or close) waits for it. build runs in the background too.
func (g *guard) startPending(ctx context.Context, build func() []image) {
	g.pending = true
	g.written = make(chan error, 1)
	sctx := context.WithoutCancel(ctx)
	go func() {
		imgs := build()
		pending, _, err := g.images(imgs)
		if err == nil {
			err = g.d.Store.InsertFixImages(sctx, g.actionID, pending)
		}
		g.written <- err
	}()
}

// wait returns the result of the background pending write, once.
func (g *guard) wait() error {
	if g.written == nil {
		return nil
	}
	err := <-g.written
	g.written = nil
	return err
}

func (g *guard) close(ctx context.Context) {
	_ = g.wait() // the background write finishes before anything else
	if g.committed {
		return
	}
	if err := g.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		g.d.log().Warn("roll back guarded change", "action", g.actionID, "err", err)
	}
	if g.pending && !g.unknown && !g.killed {
		if err := g.d.Store.DeleteFixImages(context.WithoutCancel(ctx), g.actionID); err != nil {
			g.d.log().Error("remove pending images of a rolled-back change; they stay pending", "action", g.actionID, "err", err)
		}
	}
}

// images turns images into their pending and final store rows, sealed
// when encryption is configured.
func (g *guard) images(imgs []image) (pending, final []store.FixImage, err error) {
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].key < imgs[j].key })
	pending = make([]store.FixImage, len(imgs))
	final = make([]store.FixImage, len(imgs))
	enc := g.d.Crypt.enabled()
	for i, im := range imgs {
		before, after := im.before, im.after
		if enc {
			if before, err = g.d.Crypt.seal(before); err != nil {
				return nil, nil, err
			}
			if after, err = g.d.Crypt.seal(after); err != nil {
				return nil, nil, err
			}
		}
		pending[i] = store.FixImage{RowKey: im.key, Before: before, Encrypted: enc}
		final[i] = store.FixImage{RowKey: im.key, Before: before, After: &after, Encrypted: enc}
	}
	return pending, final, nil
}

func (g *guard) commit(ctx context.Context, imgs []image) error {
	pending, final, err := g.images(imgs)
	if err != nil {
		return err
	}
	// The store writes must finish even if the caller gives up now: a
	// half-written pending set would be worse than a complete one.
	sctx := context.WithoutCancel(ctx)
	if g.written != nil {
		if err := g.wait(); err != nil {
			return fmt.Errorf("keep before-images (nothing was changed): %w", err)
		}
	} else {
		g.pending = true // maybe partly written on error; close removes it
		if err := g.d.Store.InsertFixImages(sctx, g.actionID, pending); err != nil {
			return fmt.Errorf("keep before-images (nothing was changed): %w", err)
		}
	}
	if err := g.hook(ctx, StepImagesPending); err != nil {
		return err
	}
	if err := g.tx.Commit(); err != nil {
		g.unknown = true
		return fmt.Errorf("%w: commit of action %d failed (%v); the before-images are kept, pending: compare the rows with `steward fix images %d`", ErrImagesPending, g.actionID, err, g.actionID)
	}
	g.committed = true
	if err := g.hook(ctx, StepCommitted); err != nil {
		return err
	}
	if err := g.d.Store.ReplaceFixImages(sctx, g.actionID, final); err != nil {
		return fmt.Errorf("%w: the change of action %d is committed, but its after-images could not be recorded (%v); the before-images are kept, pending", ErrImagesPending, g.actionID, err)
	}
	return g.hook(ctx, StepImagesApplied)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Values are normalized to JSON types; this cannot happen.
		panic(fmt.Sprintf("fix: image not JSON: %v", err))
	}
	return string(b)
}
