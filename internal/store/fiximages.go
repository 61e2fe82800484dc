package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// FixImage is the before- and after-image of one row changed by an action
// (fix.apply, fix.undo, sql.exec). Before and After are JSON documents
// (maybe age-encrypted, then Encrypted); the JSON null means "no row" (an
// inserted row has no before-image, a deleted row no after-image). Each is
// a JSON object, or, when its set has Columns, a JSON array of the values
// of those columns.
//
// An image is pending when its set is not confirmed (Unconfirmed), or, in
// sets written before fix_image_sets existed, when After is nil (SQL NULL).
// A pending image means the outcome of its action is unknown and must be
// checked against the database.
type FixImage struct {
	ID          int64     `json:"id"`
	ActionID    int64     `json:"action_id"`
	RowKey      string    `json:"row_key"`
	Before      string    `json:"before"`
	After       *string   `json:"after"`
	Encrypted   bool      `json:"encrypted"`
	Unconfirmed bool      `json:"unconfirmed,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Pending reports whether the image was never confirmed.
func (f FixImage) Pending() bool { return f.After == nil || f.Unconfirmed }

// FixImageSet describes the images of one action.
type FixImageSet struct {
	ActionID int64
	// Columns, when set, names the values of the JSON arrays the images
	// hold; nil: each image is a JSON object.
	Columns []string
	// Encrypted applies to every image written with the set.
	Encrypted   bool
	CreatedAt   time.Time
	ConfirmedAt *time.Time // nil: pending
}

// Pending reports whether the set was never confirmed.
func (s FixImageSet) Pending() bool { return s.ConfirmedAt == nil }

// FixImageWriter writes the images of one action in one store transaction
// (BEGIN IMMEDIATE on SQLite): nothing of the set is visible until Commit,
// and after Commit all of it is, pending until ConfirmFixImages.
type FixImageWriter struct {
	s        *Store
	conn     *sql.Conn // PostgreSQL: the connection of tx, for COPY
	tx       *sql.Tx
	set      FixImageSet
	now      string
	batch    *sql.Stmt // SQLite: prepared INSERT of sqliteImageBatch rows
	buf      []FixImage
	n        int
	finished bool
}

// sqliteImageBatch is the rows per prepared SQLite INSERT (3 parameters
// each: far under SQLite's parameter limit).
const sqliteImageBatch = 1000

// pgImageBatch is the rows per PostgreSQL COPY.
const pgImageBatch = 10_000

// BeginFixImages starts writing the image set of an action, marked pending.
// An action has at most one set.
func (s *Store) BeginFixImages(ctx context.Context, set FixImageSet) (*FixImageWriter, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store images of action %d: %w", set.ActionID, s.classify(err))
	}
	tx, err := conn.BeginTx(ctx, nil) // immediate on SQLite (see DSN)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store images of action %d: %w", set.ActionID, s.classify(err))
	}
	w := &FixImageWriter{s: s, conn: conn, tx: tx, set: set, now: FormatTime(time.Now())}
	var cols any
	if set.Columns != nil {
		b, _ := json.Marshal(set.Columns)
		cols = string(b)
	}
	if _, err := tx.ExecContext(ctx, s.rebind("INSERT INTO fix_image_sets (action_id, columns, created_at) VALUES (?, ?, ?)"), set.ActionID, cols, w.now); err != nil {
		w.Rollback()
		if isUniqueViolation(err) {
			return nil, fmt.Errorf("store images of action %d: %w: the action already kept images", set.ActionID, ErrExists)
		}
		return nil, fmt.Errorf("store images of action %d: %w", set.ActionID, err)
	}
	return w, nil
}

// Add writes images (in the open transaction). It keeps the slice only
// until it returns.
func (w *FixImageWriter) Add(ctx context.Context, imgs []FixImage) error {
	w.buf = append(w.buf, imgs...)
	size := sqliteImageBatch
	if w.s.dialect == Postgres {
		size = pgImageBatch
	}
	for len(w.buf) >= size {
		if err := w.flush(ctx, w.buf[:size]); err != nil {
			return err
		}
		w.buf = append(w.buf[:0], w.buf[size:]...)
	}
	return nil
}

func (w *FixImageWriter) flush(ctx context.Context, imgs []FixImage) error {
	if len(imgs) == 0 {
		return nil
	}
	var err error
	if w.s.dialect == Postgres {
		err = w.flushPostgres(ctx, imgs)
	} else {
		err = w.flushSQLite(ctx, imgs)
	}
	if err != nil {
		return fmt.Errorf("store images of action %d: %w", w.set.ActionID, err)
	}
	w.n += len(imgs)
	return nil
}

// flushSQLite inserts with a multi-row INSERT; full batches reuse one
// prepared statement. The values shared by every row (action, encrypted,
// created_at: numbers and a fixed-format time this writer made, never
// input) are literals, so each row binds only its own three. (Plain ?
// placeholders: with numbered ones the driver looks each name up,
// quadratic in the parameters of a statement.)
func (w *FixImageWriter) flushSQLite(ctx context.Context, imgs []FixImage) error {
	args := make([]any, 0, 3*len(imgs))
	for _, im := range imgs {
		args = append(args, im.RowKey, im.Before, nullString(im.After))
	}
	if len(imgs) == sqliteImageBatch {
		if w.batch == nil {
			st, err := w.tx.PrepareContext(ctx, w.sqliteInsert(sqliteImageBatch))
			if err != nil {
				return err
			}
			w.batch = st
		}
		_, err := w.batch.ExecContext(ctx, args...)
		return err
	}
	_, err := w.tx.ExecContext(ctx, w.sqliteInsert(len(imgs)), args...)
	return err
}

func (w *FixImageWriter) sqliteInsert(rows int) string {
	row := "(" + strconv.FormatInt(w.set.ActionID, 10) + ",?,?,?," + strconv.Itoa(boolInt(w.set.Encrypted)) + ",'" + strings.ReplaceAll(w.now, "'", "''") + "')"
	var b strings.Builder
	b.Grow(96 + rows*(len(row)+1))
	b.WriteString("INSERT INTO fix_images (action_id, row_key, before, after, encrypted, created_at) VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// flushPostgres copies a batch (COPY, in the transaction).
func (w *FixImageWriter) flushPostgres(ctx context.Context, imgs []FixImage) error {
	rows := make([][]any, len(imgs))
	enc := boolInt(w.set.Encrypted)
	for i, im := range imgs {
		rows[i] = []any{w.set.ActionID, im.RowKey, im.Before, im.After, enc, w.now}
	}
	return w.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store connection is %T, not pgx", dc)
		}
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{"fix_images"}, []string{"action_id", "row_key", "before", "after", "encrypted", "created_at"}, pgx.CopyFromRows(rows))
		return err
	})
}

// Commit writes what is buffered and commits the set, pending. It returns
// how many images the set holds.
func (w *FixImageWriter) Commit(ctx context.Context) (int, error) {
	if err := w.flush(ctx, w.buf); err != nil {
		w.Rollback()
		return 0, err
	}
	w.buf = nil
	w.finished = true
	defer w.conn.Close()
	if err := w.tx.Commit(); err != nil {
		return 0, fmt.Errorf("store images of action %d: commit: %w", w.set.ActionID, err)
	}
	return w.n, nil
}

// Rollback abandons the set; it does nothing after Commit.
func (w *FixImageWriter) Rollback() {
	if w.finished {
		return
	}
	w.finished = true
	w.tx.Rollback() //nolint:errcheck
	w.conn.Close()
}

func nullString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// ConfirmFixImages marks the image set of an action confirmed: its target
// transaction committed.
func (s *Store) ConfirmFixImages(ctx context.Context, actionID int64) error {
	res, err := s.exec(ctx, "UPDATE fix_image_sets SET confirmed_at = ? WHERE action_id = ?", FormatTime(time.Now()), actionID)
	if err != nil {
		return fmt.Errorf("confirm images of action %d: %w", actionID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("confirm images of action %d: %w", actionID, ErrNotFound)
	}
	return nil
}

// GetFixImageSet returns the image set of an action; ErrNotFound when it
// has none (no images, or images older than image sets).
func (s *Store) GetFixImageSet(ctx context.Context, actionID int64) (FixImageSet, error) {
	var cols, confirmed sql.NullString
	var created string
	err := s.queryRow(ctx, "SELECT columns, created_at, confirmed_at FROM fix_image_sets WHERE action_id = ?", actionID).Scan(&cols, &created, &confirmed)
	if errors.Is(err, sql.ErrNoRows) {
		return FixImageSet{}, fmt.Errorf("image set of action %d: %w", actionID, ErrNotFound)
	}
	if err != nil {
		return FixImageSet{}, fmt.Errorf("image set of action %d: %w", actionID, err)
	}
	set := FixImageSet{ActionID: actionID}
	set.CreatedAt, _ = ParseTime(created)
	if cols.Valid {
		if err := json.Unmarshal([]byte(cols.String), &set.Columns); err != nil {
			return FixImageSet{}, fmt.Errorf("image set of action %d: columns: %w", actionID, err)
		}
	}
	if confirmed.Valid {
		t, _ := ParseTime(confirmed.String)
		set.ConfirmedAt = &t
	}
	return set, nil
}

// ListFixImages returns the images of an action in the order written.
func (s *Store) ListFixImages(ctx context.Context, actionID int64) ([]FixImage, error) {
	rows, err := s.query(ctx, `SELECT i.id, i.action_id, i.row_key, i.before, i.after, i.encrypted, i.created_at,
  CASE WHEN s.action_id IS NOT NULL AND s.confirmed_at IS NULL THEN 1 ELSE 0 END
FROM fix_images i LEFT JOIN fix_image_sets s ON s.action_id = i.action_id WHERE i.action_id = ? ORDER BY i.id`, actionID)
	if err != nil {
		return nil, fmt.Errorf("list images of action %d: %w", actionID, err)
	}
	defer rows.Close()
	var out []FixImage
	for rows.Next() {
		var f FixImage
		var before, after sql.NullString
		var enc, unconfirmed int
		var created string
		if err := rows.Scan(&f.ID, &f.ActionID, &f.RowKey, &before, &after, &enc, &created, &unconfirmed); err != nil {
			return nil, fmt.Errorf("list images of action %d: %w", actionID, err)
		}
		f.Before = before.String
		if after.Valid {
			a := after.String
			f.After = &a
		}
		f.Encrypted = enc != 0
		f.Unconfirmed = unconfirmed != 0
		f.CreatedAt, _ = ParseTime(created)
		out = append(out, f)
	}
	return out, rows.Err()
}

// CountFixImages returns how many images an action has, and how many of
// them are pending.
func (s *Store) CountFixImages(ctx context.Context, actionID int64) (total, pending int, err error) {
	err = s.queryRow(ctx, `SELECT count(*),
  CASE WHEN EXISTS (SELECT 1 FROM fix_image_sets s WHERE s.action_id = ? AND s.confirmed_at IS NULL) THEN count(*) ELSE count(*) - count(after) END
FROM fix_images WHERE action_id = ?`, actionID, actionID).Scan(&total, &pending)
	if err != nil {
		return 0, 0, fmt.Errorf("count images of action %d: %w", actionID, err)
	}
	return total, pending, nil
}
