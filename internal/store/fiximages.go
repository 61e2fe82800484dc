package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// FixImage is the before- and after-image of one row changed by an action
// (fix.apply, fix.undo, sql.exec). Before and After are JSON documents
// (maybe age-encrypted, then Encrypted); the JSON null means "no row" (an
// inserted row has no before-image, a deleted row no after-image).
//
// After == nil (SQL NULL) marks a pending image: written before the target
// database committed, not yet confirmed. A pending set means the outcome of
// its action is unknown and must be checked against the database.
type FixImage struct {
	ID        int64     `json:"id"`
	ActionID  int64     `json:"action_id"`
	RowKey    string    `json:"row_key"`
	Before    string    `json:"before"`
	After     *string   `json:"after"`
	Encrypted bool      `json:"encrypted"`
	CreatedAt time.Time `json:"created_at"`
}

// Pending reports whether the image was never confirmed.
func (f FixImage) Pending() bool { return f.After == nil }

// fixImageBatch rows per INSERT (6 parameters each; under SQLite's limit).
const fixImageBatch = 500

// InsertFixImages stores images of an action in one transaction.
func (s *Store) InsertFixImages(ctx context.Context, actionID int64, imgs []FixImage) error {
	return s.writeFixImages(ctx, actionID, imgs, false)
}

// ReplaceFixImages replaces every image of an action with imgs in one
// transaction: how a pending set becomes applied, atomically.
func (s *Store) ReplaceFixImages(ctx context.Context, actionID int64, imgs []FixImage) error {
	return s.writeFixImages(ctx, actionID, imgs, true)
}

func (s *Store) writeFixImages(ctx context.Context, actionID int64, imgs []FixImage, replace bool) error {
	tx, err := s.db.BeginTx(ctx, nil) // immediate on SQLite (see DSN)
	if err != nil {
		return fmt.Errorf("store images of action %d: %w", actionID, s.classify(err))
	}
	defer tx.Rollback() //nolint:errcheck
	if replace {
		if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM fix_images WHERE action_id = ?"), actionID); err != nil {
			return fmt.Errorf("replace images of action %d: %w", actionID, err)
		}
	}
	now := FormatTime(time.Now())
	var b strings.Builder
	args := make([]any, 0, 6*fixImageBatch)
	for start := 0; start < len(imgs); start += fixImageBatch {
		batch := imgs[start:min(start+fixImageBatch, len(imgs))]
		b.Reset()
		args = args[:0]
		b.WriteString("INSERT INTO fix_images (action_id, row_key, before, after, encrypted, created_at) VALUES ")
		for i, im := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?, ?, ?, ?)")
			var after any
			if im.After != nil {
				after = *im.After
			}
			args = append(args, actionID, im.RowKey, im.Before, after, boolInt(im.Encrypted), now)
		}
		if _, err := tx.ExecContext(ctx, s.rebind(b.String()), args...); err != nil {
			return fmt.Errorf("store images of action %d: %w", actionID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store images of action %d: commit: %w", actionID, err)
	}
	return nil
}

// ListFixImages returns the images of an action in the order written.
func (s *Store) ListFixImages(ctx context.Context, actionID int64) ([]FixImage, error) {
	rows, err := s.query(ctx, "SELECT id, action_id, row_key, before, after, encrypted, created_at FROM fix_images WHERE action_id = ? ORDER BY id", actionID)
	if err != nil {
		return nil, fmt.Errorf("list images of action %d: %w", actionID, err)
	}
	defer rows.Close()
	var out []FixImage
	for rows.Next() {
		var f FixImage
		var before, after sql.NullString
		var enc int
		var created string
		if err := rows.Scan(&f.ID, &f.ActionID, &f.RowKey, &before, &after, &enc, &created); err != nil {
			return nil, fmt.Errorf("list images of action %d: %w", actionID, err)
		}
		f.Before = before.String
		if after.Valid {
			a := after.String
			f.After = &a
		}
		f.Encrypted = enc != 0
		f.CreatedAt, _ = ParseTime(created)
		out = append(out, f)
	}
	return out, rows.Err()
}

// CountFixImages returns how many images an action has, and how many of
// them are pending.
func (s *Store) CountFixImages(ctx context.Context, actionID int64) (total, pending int, err error) {
	err = s.queryRow(ctx, "SELECT count(*), count(*) - count(after) FROM fix_images WHERE action_id = ?", actionID).Scan(&total, &pending)
	if err != nil {
		return 0, 0, fmt.Errorf("count images of action %d: %w", actionID, err)
	}
	return total, pending, nil
}

// DeleteFixImages removes the images of an action: only for a pending set
// whose target transaction is known to have rolled back.
func (s *Store) DeleteFixImages(ctx context.Context, actionID int64) error {
	if _, err := s.exec(ctx, "DELETE FROM fix_images WHERE action_id = ?", actionID); err != nil {
		return fmt.Errorf("delete images of action %d: %w", actionID, err)
	}
	return nil
}
