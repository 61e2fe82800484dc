package readiness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// Audit events of waivers. The evaluator writes each once: added the first
// time it sees a waiver, changed when its reason, owner or expiry change,
// expired the first time it finds it expired.
const (
	EventWaiverAdded   = "readiness.waiver.added"
	EventWaiverChanged = "readiness.waiver.changed"
	EventWaiverExpired = "readiness.waiver.expired"
)

// waiverActor is the audit actor of waiver events.
const waiverActor = "system:readiness"

// findWaiver returns the configured waiver of control for service.
func findWaiver(cfg *config.Config, service, control string) *config.Waiver {
	for i := range cfg.Readiness.Waivers {
		w := &cfg.Readiness.Waivers[i]
		if w.Service == service && w.Control == control {
			return w
		}
	}
	return nil
}

// fingerprint identifies a waiver's content, to notice changes.
func fingerprint(w Waiver) string {
	sum := sha256.Sum256([]byte(w.Control + "\x00" + w.Reason + "\x00" + w.Owner + "\x00" + w.Expires.UTC().Format(time.RFC3339)))
	return hex.EncodeToString(sum[:8])
}

// applyWaiver applies the service's waiver of r's control, if any: a valid
// one makes r pass (Waived, the original reason kept), an expired one makes
// it fail. The waiver's audit event is written when due and linked as
// evidence.
func (e *Evaluator) applyWaiver(ctx context.Context, en *env, r *Result) error {
	cw := findWaiver(en.cfg, en.svc.Name, r.Control.ID)
	if cw == nil {
		return nil
	}
	exp, err := cw.ExpiresAt()
	if err != nil {
		// The loader rejects this; a config built in code may not have.
		r.Status, r.Reason = Fail, fmt.Sprintf("waiver of %s has an invalid expiry: %v", r.Control.ID, err)
		r.Fix = "fix expires in readiness.waivers"
		return nil
	}
	w := Waiver{Control: cw.Control, Reason: cw.Reason, Owner: cw.Owner, Expires: exp}
	r.Waiver = &w
	expired := !en.now.Before(exp)
	e.waiverMu.Lock()
	rec, err := e.auditWaiver(ctx, en, w, expired)
	e.waiverMu.Unlock()
	if err != nil {
		return err
	}
	ev := Evidence{Kind: "waiver", ID: en.svc.Name + "/" + w.Control, At: en.now, Actor: w.Owner,
		Summary: fmt.Sprintf("waiver of %s owned by %s until %s: %s", w.Control, w.Owner, exp.Format("2006-01-02"), w.Reason)}
	if rec != nil {
		ev.At = rec.Time
		setAudit(&ev, *rec)
	}
	r.Evidence = append(r.Evidence, ev)
	was := fmt.Sprintf("without the waiver: %s, %s", r.Status, r.Reason)
	if expired {
		r.Status = Fail
		r.Reason = fmt.Sprintf("waiver expired on %s (owner %s); %s", exp.Format("2006-01-02"), w.Owner, was)
		fix := r.Fix
		if fix == "" {
			fix = "nothing: the control passes without it"
		}
		r.Fix = "remove or renew the waiver in readiness.waivers; to pass without it: " + fix
		return nil
	}
	r.Waived = true
	if r.Status == Pass {
		r.Reason = fmt.Sprintf("passes; waiver until %s (owner %s) is not needed: %s", exp.Format("2006-01-02"), w.Owner, r.Reason)
		return nil
	}
	r.Reason = fmt.Sprintf("waived until %s by %s: %s (%s)", exp.Format("2006-01-02"), w.Owner, w.Reason, was)
	r.Status, r.Fix = Pass, ""
	return nil
}

// auditWaiver writes the waiver's audit event when the newest one for it
// does not already record its current content and state, and returns the
// event that records it (nil when nothing is recorded and no audit log is
// set).
func (e *Evaluator) auditWaiver(ctx context.Context, en *env, w Waiver, expired bool) (*store.AuditRecord, error) {
	target := "waiver:" + en.svc.Name + "/" + w.Control
	evs, err := e.Store.ListAudit(ctx, store.AuditFilter{Action: "readiness.waiver.", Target: target, Limit: 1})
	if err != nil {
		return nil, err
	}
	fp := fingerprint(w)
	action := EventWaiverAdded
	if len(evs) > 0 {
		last := evs[0]
		var d struct {
			Fingerprint string `json:"fingerprint"`
		}
		_ = json.Unmarshal([]byte(last.Details), &d)
		same := d.Fingerprint == fp
		switch {
		case same && (!expired || last.Action == EventWaiverExpired):
			return &last, nil
		case same && expired:
			action = EventWaiverExpired
		default:
			// Changed (even to an expiry already past: the next
			// evaluation records the expiry).
			action = EventWaiverChanged
		}
	} else if expired {
		// First seen already expired: record that it exists, then expired.
		if _, err := e.appendWaiver(ctx, EventWaiverAdded, target, w, fp); err != nil {
			return nil, err
		}
		action = EventWaiverExpired
	}
	return e.appendWaiver(ctx, action, target, w, fp)
}

func (e *Evaluator) appendWaiver(ctx context.Context, action, target string, w Waiver, fp string) (*store.AuditRecord, error) {
	if e.Audit == nil {
		return nil, nil
	}
	ev, err := e.Audit.Append(ctx, audit.Entry{Actor: waiverActor, Action: action, Target: target, Outcome: "ok",
		Details: map[string]any{"control": w.Control, "reason": w.Reason, "owner": w.Owner, "expires": w.Expires.Format(time.RFC3339), "fingerprint": fp}})
	if err != nil {
		return nil, fmt.Errorf("audit %s %s: %w", action, target, err)
	}
	return &store.AuditRecord{Seq: ev.Seq, Time: ev.Time, Actor: ev.Actor, Action: ev.Action, Target: ev.Target, Outcome: ev.Outcome,
		Details: string(ev.Details), PrevHash: ev.PrevHash, Hash: ev.Hash}, nil
}
