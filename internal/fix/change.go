package fix

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	alias    string // the table's alias in apply, if any
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

// afterChunk is how many after-images one query reads: the store writes
// one chunk while the next is read.
const afterChunk = 10_000

// run executes the change in one transaction; see docs/integrity.md for
// the order of the steps and what a crash at each one leaves behind.
func (d *Deps) run(ctx context.Context, t *target, c change) (outcome, error) {
	tx, err := d.begin(ctx, t)
	if err != nil {
		return outcome{}, err
	}
	g := &guard{d: d, tx: tx, actionID: c.actionID}
	defer g.close()

	// 1. Lock, and check the locked rows are the approved ones; read the
	// before-images. Rows are encoded as they are scanned.
	var keys []string
	var before encodedRows
	if c.lockQuery != "" {
		q := c.lockQuery
		if t.engine != dbx.SQLite {
			q += "\nFOR UPDATE"
		}
		locked, err := queryEncoded(ctx, tx, t.engine, c.keyCols, c.lockIsImage, q, c.lockArgs...)
		if err != nil {
			return outcome{}, fmt.Errorf("lock rows: %w", err)
		}
		keys = locked.keys
		if len(keys) != c.wantCount || (c.wantKeysHash != "" && keysHash(keys) != c.wantKeysHash) {
			return outcome{}, fmt.Errorf("%w: %d rows were approved and %d match now (or other rows); nothing was changed", ErrDataChanged, c.wantCount, len(keys))
		}
		if c.lockIsImage {
			before = locked
		}
	}
	if c.verb != "INSERT" && !c.lockIsImage {
		err := byKeys(t.engine, c.table, c.keyCols, keys, true, len(keys), func(_ []string, query string, args []any) error {
			rows, err := queryEncoded(ctx, tx, t.engine, c.keyCols, true, query, args...)
			if err != nil {
				return fmt.Errorf("read rows of %s: %w", c.table, err)
			}
			before.cols = rows.cols
			before.keys = append(before.keys, rows.keys...)
			before.docs = append(before.docs, rows.docs...)
			return nil
		})
		if err != nil {
			return outcome{}, err
		}
		if len(before.keys) != len(keys) {
			return outcome{}, fmt.Errorf("%w: the select returned %d keys but only %d are rows of %s; the select's key must be %s's key", ErrStatement, len(keys), len(before.keys), c.table, c.table)
		}
	}
	if err := g.hook(ctx, StepLocked); err != nil {
		return outcome{}, err
	}
	// Index the before-images by key while the database executes the
	// statement.
	befores := make(chan beforeImages, 1)
	go func() { befores <- indexBefore(before) }()

	// 2. Apply, and check the row count; 3. read the after-images, and
	// write them with the before-images to the store (pending, not yet
	// committed there).
	cols := before.cols
	var n int
	var bi beforeImages
	switch {
	case c.verb == "INSERT":
		inserted, err := queryEncoded(ctx, tx, t.engine, c.keyCols, true, c.apply+"\nRETURNING *", c.applyArgs...)
		if err != nil {
			return outcome{}, fmt.Errorf("apply: %w", err)
		}
		if n = len(inserted.keys); n != c.wantCount {
			return outcome{}, rowCountError(n, c.wantCount)
		}
		if err := g.hook(ctx, StepApplied); err != nil {
			return outcome{}, err
		}
		bi = indexBefore(inserted) // here the after-images
		imgs := make([]image, len(bi.keys))
		for i, k := range bi.keys {
			imgs[i] = image{key: k, before: "null", after: bi.byKey[k]}
		}
		if err := g.write(ctx, inserted.cols, imgs); err != nil {
			return outcome{}, err
		}
	case c.verb == "UPDATE" && returning(t.engine):
		if n, bi, err = d.updateReturning(ctx, g, c, cols, befores); err != nil {
			return outcome{}, err
		}
		if err := g.hook(ctx, StepApplied); err != nil {
			return outcome{}, err
		}
	default: // DELETE; UPDATE on MySQL, which has no UPDATE … RETURNING
		res, err := tx.ExecContext(ctx, c.apply, c.applyArgs...)
		if err != nil {
			return outcome{}, fmt.Errorf("apply: %w", err)
		}
		affected, err := res.RowsAffected()
		if err != nil {
			return outcome{}, fmt.Errorf("apply: %w", err)
		}
		if n = int(affected); n != c.wantCount {
			return outcome{}, rowCountError(n, c.wantCount)
		}
		if err := g.hook(ctx, StepApplied); err != nil {
			return outcome{}, err
		}
		bi = <-befores
		if c.verb == "DELETE" {
			imgs := make([]image, len(bi.keys))
			for i, k := range bi.keys {
				imgs[i] = image{key: k, before: bi.byKey[k], after: "null"}
			}
			if err := g.write(ctx, cols, imgs); err != nil {
				return outcome{}, err
			}
			break
		}
		// The same rows, read again by key, a chunk at a time; the store
		// writes a chunk while the next one is read.
		err = byKeys(t.engine, c.table, c.keyCols, bi.keys, false, afterChunk, func(part []string, query string, args []any) error {
			after, err := queryEncoded(ctx, tx, t.engine, c.keyCols, true, query, args...)
			if err != nil {
				return fmt.Errorf("read rows of %s: %w", c.table, err)
			}
			if !slices.Equal(after.cols, cols) {
				return fmt.Errorf("%w: the columns of %s changed during the change", ErrStatement, c.table)
			}
			imgs := make([]image, len(after.keys))
			for i, k := range after.keys {
				b, ok := bi.byKey[k]
				if !ok {
					return fmt.Errorf("%w: row %s of %s is not one of the changed rows; an apply statement must not change key columns", ErrStatement, k, c.table)
				}
				imgs[i] = image{key: k, before: b, after: patchOf(b, after.docs[i])}
			}
			if len(imgs) != len(part) {
				return fmt.Errorf("%w: %d of %d rows of %s are gone after the update; an apply statement must not change key columns", ErrStatement, len(part)-len(imgs), len(part), c.table)
			}
			sort.Slice(imgs, func(i, j int) bool { return imgs[i].key < imgs[j].key })
			return g.write(ctx, cols, imgs)
		})
		if err != nil {
			return outcome{}, err
		}
	}

	// 4. Commit the images (pending), commit the change, confirm the images.
	stored, err := g.commit(ctx)
	out := outcome{Rows: n, Images: stored}
	if err != nil {
		return out, err
	}
	out.Keys = bi.keys[:min(len(bi.keys), previewKeys)]
	return out, nil
}

func rowCountError(n, want int) error {
	return fmt.Errorf("%w: the statement changed %d rows, %d were approved; rolled back, nothing was changed", ErrRowCount, n, want)
}

// returning reports whether an engine returns the rows an UPDATE changed
// (UPDATE … RETURNING): PostgreSQL and SQLite; not MySQL or MariaDB.
func returning(engine string) bool { return engine == dbx.Postgres || engine == dbx.SQLite }

// updateReturning executes an UPDATE with RETURNING: each changed row
// comes back as its after-image, and goes to the store with its
// before-image as the rows arrive, a chunk at a time. It returns the
// number of rows changed and the before-images. Nothing is committed.
func (d *Deps) updateReturning(ctx context.Context, g *guard, c change, cols []string, befores <-chan beforeImages) (int, beforeImages, error) {
	ret := "*" // SQLite returns the target table's columns only
	if c.engine == dbx.Postgres {
		ret = c.table + ".*"
		if c.alias != "" {
			ret = c.alias + ".*"
		}
	}
	var bi beforeImages
	var n, strangers int
	var stranger string
	chunk := make([]image, 0, afterChunk)
	flush := func() error {
		sort.Slice(chunk, func(i, j int) bool { return chunk[i].key < chunk[j].key })
		err := g.write(ctx, cols, chunk)
		chunk = make([]image, 0, afterChunk)
		return err
	}
	retCols, err := scanEncoded(ctx, g.tx, c.engine, c.keyCols, true, c.apply+"\nRETURNING "+ret, c.applyArgs, func(key, doc string) error {
		if n == 0 {
			bi = <-befores // indexed while the statement ran
		}
		n++
		b, ok := bi.byKey[key]
		if !ok {
			strangers++
			stranger = key
		}
		if n > c.wantCount || strangers > 0 {
			return nil // it fails below; count the rest
		}
		chunk = append(chunk, image{key: key, before: b, after: patchOf(b, doc)})
		if len(chunk) == afterChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return n, bi, fmt.Errorf("apply: %w", err)
	}
	if n == 0 {
		bi = <-befores
	}
	switch {
	case n != c.wantCount:
		return n, bi, rowCountError(n, c.wantCount)
	case strangers > 0:
		return n, bi, fmt.Errorf("%w: the statement returned %d row(s) of %s that are not the locked ones (%s); an apply statement must not change key columns; rolled back", ErrStatement, strangers, c.table, stranger)
	case !slices.Equal(retCols, cols):
		return n, bi, fmt.Errorf("%w: the columns of %s changed during the change", ErrStatement, c.table)
	}
	if len(chunk) > 0 {
		if err := flush(); err != nil {
			return n, bi, err
		}
	}
	return n, bi, nil
}

// beforeImages are the encoded before-images of a change by key, and
// their keys in order.
type beforeImages struct {
	byKey map[string]string
	keys  []string
}

func indexBefore(rows encodedRows) beforeImages {
	bi := beforeImages{byKey: make(map[string]string, len(rows.keys)), keys: slices.Clone(rows.keys)}
	for i, k := range rows.keys {
		bi.byKey[k] = rows.docs[i]
	}
	sort.Strings(bi.keys)
	return bi
}

// guard carries a target transaction through the image protocol:
//
//  1. the images, before and after, are written to the store in one store
//     transaction, with their set marked pending, and committed;
//  2. the target transaction commits;
//  3. the set is confirmed (one small store write).
//
// A crash between 1 and 3 leaves a pending set: its images are safe, and
// whether the change committed must be checked (the rows equal either
// their before- or their after-images). An error before 1 commits rolls
// back both transactions: nothing is kept, nothing changed. A stop from
// the test hook returns at once, as a killed process would.
type guard struct {
	d        *Deps
	tx       *sql.Tx
	actionID int64

	sink      *imageSink // images being written
	committed bool       // target committed
}

func (g *guard) hook(ctx context.Context, step string) error {
	return g.d.hook(ctx, step)
}

func (g *guard) close() {
	if g.sink != nil {
		g.sink.abort()
	}
	if g.committed {
		return
	}
	if err := g.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		g.d.log().Warn("roll back guarded change", "action", g.actionID, "err", err)
	}
}

// write queues images for the store, starting the store transaction with
// the first ones; columns names the values of their JSON arrays (nil: JSON
// objects).
func (g *guard) write(ctx context.Context, columns []string, imgs []image) error {
	if g.sink == nil {
		sink, err := g.startImages(ctx, columns)
		if err != nil {
			return fmt.Errorf("keep images (nothing was changed): %w", err)
		}
		g.sink = sink
	}
	return g.sink.add(imgs)
}

// commit commits the images written, pending, then the target, then
// confirms the images. It returns how many images it stored.
func (g *guard) commit(ctx context.Context) (int, error) {
	if g.sink == nil { // no images: an empty set says so
		if err := g.write(ctx, nil, nil); err != nil {
			return 0, err
		}
	}
	// A target connection lost while the images were read or written
	// shows here, before the images are committed.
	if _, err := g.tx.ExecContext(ctx, "SELECT 1"); err != nil {
		return 0, fmt.Errorf("target transaction lost before commit; rolled back, nothing was changed: %w", err)
	}
	n, err := g.sink.finish(ctx)
	g.sink = nil
	if err != nil {
		return 0, fmt.Errorf("keep images (nothing was changed): %w", err)
	}
	if err := g.hook(ctx, StepImagesPending); err != nil {
		return n, err
	}
	if err := g.tx.Commit(); err != nil {
		g.committed = true // not to be rolled back: its outcome is unknown
		return n, fmt.Errorf("%w: commit of action %d failed (%v); its before- and after-images are kept, pending: compare the rows with `steward fix images %d`", ErrImagesPending, g.actionID, err, g.actionID)
	}
	g.committed = true
	if err := g.hook(ctx, StepCommitted); err != nil {
		return n, err
	}
	if err := g.d.Store.ConfirmFixImages(context.WithoutCancel(ctx), g.actionID); err != nil {
		return n, fmt.Errorf("%w: the change of action %d is committed, but its images could not be confirmed (%v); they are kept, pending", ErrImagesPending, g.actionID, err)
	}
	return n, g.hook(ctx, StepImagesApplied)
}

// imageSink writes images to the store in the background, in one store
// transaction, while the caller reads the next ones from the target.
type imageSink struct {
	w      *store.FixImageWriter
	crypt  *Crypt
	queue  chan []store.FixImage
	done   chan error
	closed bool
}

func (g *guard) startImages(ctx context.Context, columns []string) (*imageSink, error) {
	enc := g.d.Crypt.enabled()
	w, err := g.d.Store.BeginFixImages(ctx, store.FixImageSet{ActionID: g.actionID, Columns: columns, Encrypted: enc})
	if err != nil {
		return nil, err
	}
	s := &imageSink{w: w, queue: make(chan []store.FixImage, 4), done: make(chan error, 1)}
	if enc {
		s.crypt = g.d.Crypt
	}
	go func() {
		var err error
		for imgs := range s.queue {
			if err == nil {
				err = w.Add(ctx, imgs)
			}
		}
		s.done <- err
	}()
	return s, nil
}

// add queues images for writing, sealed when encryption is configured.
func (s *imageSink) add(imgs []image) error {
	rows := make([]store.FixImage, len(imgs))
	for i, im := range imgs {
		before, after := im.before, im.after
		if s.crypt != nil {
			var err error
			if before, err = s.crypt.seal(before); err != nil {
				return err
			}
			if after, err = s.crypt.seal(after); err != nil {
				return err
			}
		}
		rows[i] = store.FixImage{RowKey: im.key, Before: before, After: &after}
	}
	s.queue <- rows
	return nil
}

// finish waits for the writes and commits the set, pending.
func (s *imageSink) finish(ctx context.Context) (int, error) {
	s.closed = true
	close(s.queue)
	if err := <-s.done; err != nil {
		s.w.Rollback()
		return 0, err
	}
	return s.w.Commit(ctx)
}

// abort stops the writes and rolls the set back.
func (s *imageSink) abort() {
	if !s.closed {
		s.closed = true
		close(s.queue)
		<-s.done
	}
	s.w.Rollback()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Values are normalized to JSON types; this cannot happen.
		panic(fmt.Sprintf("fix: image not JSON: %v", err))
	}
	return string(b)
}
