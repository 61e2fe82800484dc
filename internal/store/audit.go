package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AuditRecord is one row of the hash-chained audit log, as stored. The audit
// package computes Hash and PrevHash; the store only keeps them.
type AuditRecord struct {
	Seq      int64
	Time     time.Time // UTC, microsecond precision
	Actor    string
	Action   string
	Target   string
	Outcome  string
	Details  string // canonical JSON object
	PrevHash string // hex
	Hash     string // hex
}

// AuditHead is the newest event of the chain; Seq 0 and an empty hash for an
// empty log.
type AuditHead struct {
	Seq  int64
	Hash string
}

const auditCols = "seq, ts, actor, action, target, outcome, details, prev_hash, hash"

func scanAudit(sc scanner) (AuditRecord, error) {
	var r AuditRecord
	var ts string
	if err := sc.Scan(&r.Seq, &ts, &r.Actor, &r.Action, &r.Target, &r.Outcome, &r.Details, &r.PrevHash, &r.Hash); err != nil {
		return AuditRecord{}, err
	}
	t, err := ParseTime(ts)
	if err != nil {
		return AuditRecord{}, fmt.Errorf("audit event %d: bad time %q: %w", r.Seq, ts, err)
	}
	r.Time = t
	return r, nil
}

// AuditHead returns the newest event's sequence number and hash.
func (s *Store) AuditHead(ctx context.Context) (AuditHead, error) {
	return auditHead(ctx, s.db, s)
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func auditHead(ctx context.Context, q querier, s *Store) (AuditHead, error) {
	var h AuditHead
	err := q.QueryRowContext(ctx, "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, nil
	}
	if err != nil {
		return AuditHead{}, fmt.Errorf("audit head: %w", err)
	}
	return h, nil
}

// auditBatchRows is how many rows one INSERT statement carries.
const auditBatchRows = 200

// AppendAudit appends events atomically. In one write transaction it reads
// the chain head, calls build with it, and inserts what build returns, so two
// processes appending to the same store can never fork the chain (SQLite
// takes the write lock at BEGIN; PostgreSQL takes a transaction-level
// advisory lock). build must return records numbered head.Seq+1, +2, ….
func (s *Store) AppendAudit(ctx context.Context, build func(head AuditHead) ([]AuditRecord, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit: %w", s.classify(err))
	}
	defer tx.Rollback() //nolint:errcheck
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7352002)"); err != nil {
			return fmt.Errorf("append audit: lock: %w", err)
		}
	}
	head, err := auditHead(ctx, tx, s)
	if err != nil {
		return err
	}
	recs, err := build(head)
	if err != nil {
		return err
	}
	for i, r := range recs {
		if r.Seq != head.Seq+int64(i)+1 {
			return fmt.Errorf("append audit: record %d has seq %d, want %d: %w", i, r.Seq, head.Seq+int64(i)+1, ErrAuditConflict)
		}
	}
	for start := 0; start < len(recs); start += auditBatchRows {
		q, args := auditInsert(recs[start:min(start+auditBatchRows, len(recs))])
		if _, err := tx.ExecContext(ctx, s.rebind(q), args...); err != nil {
			return auditInsertErr(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit: commit: %w", err)
	}
	return nil
}

// InsertAuditBatch inserts records that continue a head the caller read
// earlier (records numbered head.Seq+1, +2, …, the first naming head.Hash).
// No lock is taken: the seq primary key makes a stale head fail with
// ErrAuditConflict and write nothing, so the caller re-reads the head and
// rebuilds. One statement per batch means one round trip and one commit,
// which is what lets a single writer keep up with many callers.
func (s *Store) InsertAuditBatch(ctx context.Context, recs []AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq != recs[0].Seq+int64(i) {
			return fmt.Errorf("append audit: record %d has seq %d, want %d: %w", i, recs[i].Seq, recs[0].Seq+int64(i), ErrAuditConflict)
		}
	}
	if len(recs) <= auditBatchRows {
		q, args := auditInsert(recs)
		_, err := s.db.ExecContext(ctx, s.rebind(q), args...)
		return auditInsertErr(err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit: %w", s.classify(err))
	}
	defer tx.Rollback() //nolint:errcheck
	for start := 0; start < len(recs); start += auditBatchRows {
		q, args := auditInsert(recs[start:min(start+auditBatchRows, len(recs))])
		if _, err := tx.ExecContext(ctx, s.rebind(q), args...); err != nil {
			return auditInsertErr(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return auditInsertErr(err)
	}
	return nil
}

func auditInsert(recs []AuditRecord) (string, []any) {
	var b strings.Builder
	b.WriteString("INSERT INTO audit_events (" + auditCols + ") VALUES ")
	args := make([]any, 0, len(recs)*9)
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
		args = append(args, r.Seq, FormatTime(r.Time), r.Actor, r.Action, r.Target, r.Outcome, r.Details, r.PrevHash, r.Hash)
	}
	return b.String(), args
}

func auditInsertErr(err error) error {
	switch {
	case err == nil:
		return nil
	case isUniqueViolation(err):
		return fmt.Errorf("append audit: %w: %v", ErrAuditConflict, err)
	default:
		return fmt.Errorf("append audit: %w", err)
	}
}

// ScanAudit calls fn for every event with seq >= fromSeq, in seq order,
// streaming rather than loading the log into memory.
func (s *Store) ScanAudit(ctx context.Context, fromSeq int64, fn func(AuditRecord) error) error {
	rows, err := s.query(ctx, "SELECT "+auditCols+" FROM audit_events WHERE seq >= ? ORDER BY seq", fromSeq)
	if err != nil {
		return fmt.Errorf("scan audit: %w", s.classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("scan audit: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditFilter selects events for listing. Zero values select everything.
type AuditFilter struct {
	BeforeSeq int64 // only events with seq < BeforeSeq (paging backwards from newest)
	AfterSeq  int64 // only events with seq > AfterSeq
	Actor     string
	Action    string // prefix match, e.g. "user." matches user.add
	Target    string
	Limit     int // default 100, at most 1000
}

// ListAudit returns events newest first, filtered.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	var where []string
	var args []any
	if f.BeforeSeq > 0 {
		where = append(where, "seq < ?")
		args = append(args, f.BeforeSeq)
	}
	if f.AfterSeq > 0 {
		where = append(where, "seq > ?")
		args = append(args, f.AfterSeq)
	}
	if f.Actor != "" {
		where = append(where, "actor = ?")
		args = append(args, f.Actor)
	}
	if f.Action != "" {
		where = append(where, "action LIKE ?")
		args = append(args, strings.NewReplacer("%", "", "_", "").Replace(f.Action)+"%")
	}
	if f.Target != "" {
		where = append(where, "target = ?")
		args = append(args, f.Target)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	q := "SELECT " + auditCols + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY seq DESC LIMIT %d", f.Limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Checkpoint is a signed statement of the chain's size and head hash.
type Checkpoint struct {
	ID        int64
	Size      int64
	HeadHash  string
	Note      string // the signed note text
	CreatedAt time.Time
}

// InsertCheckpoint records a checkpoint that was written.
func (s *Store) InsertCheckpoint(ctx context.Context, c Checkpoint) (Checkpoint, error) {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	c.CreatedAt = c.CreatedAt.UTC().Truncate(time.Microsecond)
	err := s.queryRow(ctx, "INSERT INTO audit_checkpoints (size, head_hash, note, created_at) VALUES (?, ?, ?, ?) RETURNING id",
		c.Size, c.HeadHash, c.Note, FormatTime(c.CreatedAt)).Scan(&c.ID)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("record checkpoint: %w", err)
	}
	return c, nil
}

// LatestCheckpoint returns the newest checkpoint; ErrNotFound when none.
func (s *Store) LatestCheckpoint(ctx context.Context) (Checkpoint, error) {
	var c Checkpoint
	var created string
	err := s.queryRow(ctx, "SELECT id, size, head_hash, note, created_at FROM audit_checkpoints ORDER BY id DESC LIMIT 1").
		Scan(&c.ID, &c.Size, &c.HeadHash, &c.Note, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", ErrNotFound)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("latest checkpoint: %w", err)
	}
	c.CreatedAt, _ = ParseTime(created)
	return c, nil
}
