package report

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// evidenceActions are the audit actions that record evidence items.
var evidenceActions = []string{
	"backup.run", "drill.run", "restore.run", "check.run", "access.scan", "access.grant", "access.revoke",
	"action.plan", "action.approve", "action.reject", "action.approved", "action.execute", "action.succeeded", "action.failed",
	"action.break_glass", "review.open", "review.signoff", "review.complete", "review.overdue",
	"kit.create", "kit.drill", "notify.test", "audit.checkpoint",
}

// idKeys names, per action, the details field holding the id of the row
// the event records; other actions record their row in the target.
var idKeys = map[string]string{
	"backup.run":  "run",
	"drill.run":   "run_id",
	"restore.run": "run_id",
	"check.run":   "run_id",
	"access.scan": "scan_id",
}

// event is an audit event with its details decoded.
type event struct {
	store.AuditRecord
	details map[string]any
}

// str returns a details field as text ("" when absent).
func (e event) str(key string) string {
	switch v := e.details[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// strs returns a details field that is a list of strings.
func (e event) strs(key string) []string {
	l, _ := e.details[key].([]any)
	var out []string
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// auditIndex finds the audit event that records a row.
type auditIndex struct {
	byKey    map[string][]event
	byAction map[string][]event
}

func indexKey(action, id string) string { return action + "\x00" + id }

// loadAuditIndex reads the evidence events written since.
func loadAuditIndex(ctx context.Context, s *store.Store, since time.Time) (*auditIndex, error) {
	recs, err := s.AuditEventsByAction(ctx, evidenceActions, since)
	if err != nil {
		return nil, err
	}
	ix := &auditIndex{byKey: map[string][]event{}, byAction: map[string][]event{}}
	for _, r := range recs {
		e := event{AuditRecord: r, details: map[string]any{}}
		dec := json.NewDecoder(bytes.NewReader([]byte(r.Details)))
		dec.UseNumber()
		_ = dec.Decode(&e.details) // a damaged row keeps empty details; verification reports it
		id := r.Target
		if k, ok := idKeys[r.Action]; ok {
			id = e.str(k)
		}
		ix.byKey[indexKey(r.Action, id)] = append(ix.byKey[indexKey(r.Action, id)], e)
		ix.byAction[r.Action] = append(ix.byAction[r.Action], e)
	}
	return ix, nil
}

// find returns the event of action recording id, preferring outcome ok;
// ok is false when there is none.
func (ix *auditIndex) find(action, id string) (event, bool) {
	evs := ix.byKey[indexKey(action, id)]
	for _, e := range evs {
		if e.Outcome == "ok" {
			return e, true
		}
	}
	if len(evs) > 0 {
		return evs[0], true
	}
	return event{}, false
}

// all returns every event of action recording id, in seq order.
func (ix *auditIndex) all(action, id string) []event { return ix.byKey[indexKey(action, id)] }
