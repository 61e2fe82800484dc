package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// States of a notify_outbox row.
const (
	OutboxPending   = "pending"   // waiting for its next attempt
	OutboxDelivered = "delivered" // the channel accepted it
	OutboxFailed    = "failed"    // gave up after the maximum number of attempts
)

// OutboxResolveSuffix is appended to the dedup key of a resolve message, so a
// resolve is deduplicated separately from what it resolves.
const OutboxResolveSuffix = ":resolve"

// OutboxRow is one message for one channel in the notification outbox.
type OutboxRow struct {
	ID            int64      `json:"id"`
	Channel       string     `json:"channel"`
	Event         string     `json:"event"`
	Severity      string     `json:"severity"`
	Service       string     `json:"service,omitempty"`
	DedupKey      string     `json:"dedup_key"`
	Payload       string     `json:"payload"` // the message, JSON
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
}

const outboxCols = "id, channel, event, severity, service, dedup_key, payload, state, attempts, last_error, created_at, next_attempt_at, delivered_at"

func scanOutbox(sc scanner) (OutboxRow, error) {
	var r OutboxRow
	var created, next string
	var delivered sql.NullString
	if err := sc.Scan(&r.ID, &r.Channel, &r.Event, &r.Severity, &r.Service, &r.DedupKey, &r.Payload, &r.State,
		&r.Attempts, &r.LastError, &created, &next, &delivered); err != nil {
		return OutboxRow{}, err
	}
	var err error
	if r.CreatedAt, err = ParseTime(created); err != nil {
		return OutboxRow{}, fmt.Errorf("outbox row %d: bad created_at %q: %w", r.ID, created, err)
	}
	if r.NextAttemptAt, err = ParseTime(next); err != nil {
		return OutboxRow{}, fmt.Errorf("outbox row %d: bad next_attempt_at %q: %w", r.ID, next, err)
	}
	r.DeliveredAt = nullTime(delivered)
	return r, nil
}

// EnqueueOutbox adds r as a pending row due at r.NextAttemptAt and returns
// its id, or ok == false when it is a repeat: a row with the same channel
// and dedup key is already pending or delivered. A failed row with the same
// key is re-armed (pending again, attempts reset) with r's payload.
//
// With resolve set, r.DedupKey is the key being resolved: the row is stored
// under DedupKey+OutboxResolveSuffix, and only when the channel has a row
// with DedupKey (nothing to resolve otherwise). A new non-resolve message
// whose key was resolved earlier opens a new incident: the old row and its
// resolve are archived (their key gets "#id" appended) so both can be sent
// again.
func (s *Store) EnqueueOutbox(ctx context.Context, r OutboxRow, resolve bool) (id int64, ok bool, err error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	if r.NextAttemptAt.IsZero() {
		r.NextAttemptAt = r.CreatedAt
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("enqueue notification: %w", s.classify(err))
	}
	defer tx.Rollback() //nolint:errcheck
	key := r.DedupKey
	if resolve {
		var n int
		if err := tx.QueryRowContext(ctx, s.rebind("SELECT count(*) FROM notify_outbox WHERE channel = ? AND dedup_key = ?"), r.Channel, key).Scan(&n); err != nil {
			return 0, false, fmt.Errorf("enqueue notification: %w", err)
		}
		if n == 0 {
			return 0, false, nil
		}
		key += OutboxResolveSuffix
	} else if err := s.archiveResolved(ctx, tx, r.Channel, key); err != nil {
		return 0, false, err
	}
	err = tx.QueryRowContext(ctx, s.rebind(`INSERT INTO notify_outbox
		(channel, event, severity, service, dedup_key, payload, state, attempts, last_error, created_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?)
		ON CONFLICT (channel, dedup_key) DO UPDATE SET
			event = excluded.event, severity = excluded.severity, service = excluded.service, payload = excluded.payload,
			state = excluded.state, attempts = 0, last_error = '', created_at = excluded.created_at,
			next_attempt_at = excluded.next_attempt_at, delivered_at = NULL
		WHERE notify_outbox.state = ?
		RETURNING id`),
		r.Channel, r.Event, r.Severity, r.Service, key, r.Payload, OutboxPending,
		FormatTime(r.CreatedAt), FormatTime(r.NextAttemptAt), OutboxFailed).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("enqueue notification for %s: %w", r.Channel, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("enqueue notification: commit: %w", err)
	}
	return id, true, nil
}

// archiveResolved renames the rows of key and key's resolve on channel out
// of the way when key was resolved, so that key opens a new incident.
func (s *Store) archiveResolved(ctx context.Context, tx *sql.Tx, channel, key string) error {
	rows, err := tx.QueryContext(ctx, s.rebind("SELECT id, dedup_key FROM notify_outbox WHERE channel = ? AND dedup_key IN (?, ?)"),
		channel, key, key+OutboxResolveSuffix)
	if err != nil {
		return fmt.Errorf("enqueue notification: %w", err)
	}
	type old struct {
		id  int64
		key string
	}
	var olds []old
	resolved := false
	for rows.Next() {
		var o old
		if err := rows.Scan(&o.id, &o.key); err != nil {
			rows.Close()
			return fmt.Errorf("enqueue notification: %w", err)
		}
		resolved = resolved || strings.HasSuffix(o.key, OutboxResolveSuffix)
		olds = append(olds, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("enqueue notification: %w", err)
	}
	if !resolved {
		return nil
	}
	for _, o := range olds {
		if _, err := tx.ExecContext(ctx, s.rebind("UPDATE notify_outbox SET dedup_key = ? WHERE id = ?"),
			o.key+"#"+strconv.FormatInt(o.id, 10), o.id); err != nil {
			return fmt.Errorf("enqueue notification: archive row %d: %w", o.id, err)
		}
	}
	return nil
}

// DueOutbox returns up to limit pending rows due at now, oldest first. A
// resolve waits while an earlier row with the key it resolves is pending on
// the same channel, so it never overtakes what it resolves.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxRow, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, "SELECT "+outboxCols+` FROM notify_outbox o
		WHERE o.state = ? AND o.next_attempt_at <= ?
		AND NOT (o.dedup_key LIKE '%`+OutboxResolveSuffix+`' AND EXISTS (
			SELECT 1 FROM notify_outbox t WHERE t.channel = o.channel AND t.state = ? AND t.id < o.id
			AND t.dedup_key || '`+OutboxResolveSuffix+`' = o.dedup_key))
		ORDER BY o.id LIMIT `+strconv.Itoa(limit),
		OutboxPending, FormatTime(now), OutboxPending)
	if err != nil {
		return nil, fmt.Errorf("due notifications: %w", s.classify(err))
	}
	return collectOutbox(rows)
}

// ListOutbox returns rows by id, newest first; channel and state filter
// when not empty.
func (s *Store) ListOutbox(ctx context.Context, channel, state string, limit int) ([]OutboxRow, error) {
	q := "SELECT " + outboxCols + " FROM notify_outbox WHERE 1 = 1"
	var args []any
	if channel != "" {
		q += " AND channel = ?"
		args = append(args, channel)
	}
	if state != "" {
		q += " AND state = ?"
		args = append(args, state)
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, q+" ORDER BY id DESC LIMIT "+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return collectOutbox(rows)
}

func collectOutbox(rows *sql.Rows) ([]OutboxRow, error) {
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		r, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("read notification: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// GetOutbox returns one row; ErrNotFound when there is none.
func (s *Store) GetOutbox(ctx context.Context, id int64) (OutboxRow, error) {
	r, err := scanOutbox(s.queryRow(ctx, "SELECT "+outboxCols+" FROM notify_outbox WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return OutboxRow{}, fmt.Errorf("notification %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return OutboxRow{}, fmt.Errorf("get notification %d: %w", id, err)
	}
	return r, nil
}

// ClaimOutbox takes a pending row for one delivery attempt: it moves
// next_attempt_at from seen (what the caller read) to until, which works as a
// lease. It reports false when another deliverer claimed or finished the row
// first. Whoever holds the claim finishes it with MarkOutboxDelivered or
// MarkOutboxRetry, passing until.
func (s *Store) ClaimOutbox(ctx context.Context, id int64, seen, until time.Time) (bool, error) {
	res, err := s.exec(ctx, "UPDATE notify_outbox SET next_attempt_at = ? WHERE id = ? AND state = ? AND next_attempt_at = ?",
		FormatTime(until), id, OutboxPending, FormatTime(seen))
	if err != nil {
		return false, fmt.Errorf("claim notification %d: %w", id, s.classify(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// MarkOutboxDelivered records a successful attempt of a claimed row. It
// reports false when the claim was lost (the lease ran out and another
// deliverer took the row).
func (s *Store) MarkOutboxDelivered(ctx context.Context, id int64, claim, at time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE notify_outbox SET state = ?, attempts = attempts + 1, delivered_at = ?, next_attempt_at = ?
		WHERE id = ? AND state = ? AND next_attempt_at = ?`,
		OutboxDelivered, FormatTime(at), FormatTime(at), id, OutboxPending, FormatTime(claim))
	if err != nil {
		return false, fmt.Errorf("mark notification %d delivered: %w", id, s.classify(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// MarkOutboxRetry records a failed attempt of a claimed row: the error, and
// either the next attempt's time or, with giveUp, the failed state.
func (s *Store) MarkOutboxRetry(ctx context.Context, id int64, claim time.Time, lastErr string, next time.Time, giveUp bool) (bool, error) {
	state := OutboxPending
	if giveUp {
		state = OutboxFailed
	}
	res, err := s.exec(ctx, `UPDATE notify_outbox SET state = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ?
		WHERE id = ? AND state = ? AND next_attempt_at = ?`,
		state, lastErr, FormatTime(next), id, OutboxPending, FormatTime(claim))
	if err != nil {
		return false, fmt.Errorf("record notification %d attempt: %w", id, s.classify(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// OutboxChannelStats summarizes one channel's outbox rows.
type OutboxChannelStats struct {
	Channel         string     `json:"channel"`
	Pending         int        `json:"pending"`
	Delivered       int        `json:"delivered"`
	Failed          int        `json:"failed"`
	OldestPending   *time.Time `json:"oldest_pending,omitempty"` // created_at of the oldest pending row
	LastError       string     `json:"last_error,omitempty"`     // of the newest pending or failed row that has one
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
}

// OutboxStats returns per-channel counts, by channel name.
func (s *Store) OutboxStats(ctx context.Context) ([]OutboxChannelStats, error) {
	rows, err := s.query(ctx, "SELECT channel, state, count(*), min(created_at), max(delivered_at) FROM notify_outbox GROUP BY channel, state ORDER BY channel")
	if err != nil {
		return nil, fmt.Errorf("notification stats: %w", s.classify(err))
	}
	byName := map[string]*OutboxChannelStats{}
	var order []string
	for rows.Next() {
		var ch, state string
		var n int
		var oldest, delivered sql.NullString
		if err := rows.Scan(&ch, &state, &n, &oldest, &delivered); err != nil {
			rows.Close()
			return nil, fmt.Errorf("notification stats: %w", err)
		}
		st := byName[ch]
		if st == nil {
			st = &OutboxChannelStats{Channel: ch}
			byName[ch] = st
			order = append(order, ch)
		}
		switch state {
		case OutboxPending:
			st.Pending = n
			st.OldestPending = nullTime(oldest)
		case OutboxDelivered:
			st.Delivered = n
			st.LastDeliveredAt = nullTime(delivered)
		case OutboxFailed:
			st.Failed = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("notification stats: %w", err)
	}
	rows, err = s.query(ctx, `SELECT channel, last_error FROM notify_outbox WHERE id IN (
		SELECT max(id) FROM notify_outbox WHERE last_error <> '' AND state <> ? GROUP BY channel)`, OutboxDelivered)
	if err != nil {
		return nil, fmt.Errorf("notification stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ch, msg string
		if err := rows.Scan(&ch, &msg); err != nil {
			return nil, fmt.Errorf("notification stats: %w", err)
		}
		if st := byName[ch]; st != nil {
			st.LastError = msg
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("notification stats: %w", err)
	}
	out := make([]OutboxChannelStats, 0, len(order))
	for _, ch := range order {
		out = append(out, *byName[ch])
	}
	return out, nil
}
