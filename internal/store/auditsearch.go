package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AuditSearch selects events for the web UI's audit page: the filters of
// AuditFilter, a time range and a service. Zero values select everything.
type AuditSearch struct {
	AuditFilter
	// Seq selects the one event with that sequence number (a link to it).
	Seq int64
	// Since and Until bound the event time: Since <= ts < Until.
	Since, Until time.Time
	// Service selects events about the service: a target naming it
	// ("backup:shop/nightly", "probe:shop:home", "service:shop") or details
	// with "service":"shop".
	Service string
}

// likeEscape escapes LIKE's wildcards in s for "LIKE ? ESCAPE '\'".
var likeEscape = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

// SearchAudit returns events newest first, filtered by f.
func (s *Store) SearchAudit(ctx context.Context, f AuditSearch) ([]AuditRecord, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if f.Seq > 0 {
		add("seq = ?", f.Seq)
	}
	if f.BeforeSeq > 0 {
		add("seq < ?", f.BeforeSeq)
	}
	if f.AfterSeq > 0 {
		add("seq > ?", f.AfterSeq)
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Action != "" {
		add(`action LIKE ? ESCAPE '\'`, likeEscape.Replace(f.Action)+"%")
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if !f.Since.IsZero() {
		add("ts >= ?", FormatTime(f.Since))
	}
	if !f.Until.IsZero() {
		add("ts < ?", FormatTime(f.Until))
	}
	if f.Service != "" {
		e := likeEscape.Replace(f.Service)
		add(`(target LIKE ? ESCAPE '\' OR target LIKE ? ESCAPE '\' OR target LIKE ? ESCAPE '\' OR details LIKE ? ESCAPE '\')`,
			"%:"+e, "%:"+e+"/%", "%:"+e+":%", `%"service":"`+e+`"%`)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	q := "SELECT " + auditCols + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY seq DESC LIMIT %d", limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("search audit: %w", s.classify(err))
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("search audit: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
