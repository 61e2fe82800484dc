package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Review states.
const (
	ReviewOpen      = "open"
	ReviewCompleted = "completed"
)

// BreakGlass executes an action at once, without approvals. It is never
// silent: every channel is notified, the action is flagged, and a review is
// opened that other people must complete before its deadline. During a
// change freeze it is allowed and flagged with the freeze's name.
func (p *Pipeline) BreakGlass(ctx context.Context, actor auth.Principal, req Request) (*Action, store.ReviewRow, error) {
	if !actor.Can(auth.PermBreakGlass) {
		_ = p.audit(ctx, actor.Actor(), "action.break_glass", "kind:"+req.Kind, "denied", map[string]any{"reason": req.Reason, "why": "no break_glass permission"})
		return nil, store.ReviewRow{}, fmt.Errorf("%w: %s lacks the break_glass permission; ask for approval with `steward action request` instead", ErrNoBreakGlass, actor.Actor())
	}
	a, kind, err := p.newAction(actor, req)
	if err != nil {
		return nil, store.ReviewRow{}, err
	}
	plan, err := kind.Plan(ctx, a)
	if err != nil {
		return nil, store.ReviewRow{}, fmt.Errorf("plan %s: %w", a.Kind, err)
	}
	a.Plan, a.Risk, a.PlanHash, a.PlanVersion = plan, plan.Risk, PlanHash(a, plan), 1
	a.State, a.BreakGlass, a.Rule = Planned, true, "break-glass"
	cfg, eng := p.current()
	now := p.now()
	if name, _, frozen := eng.Frozen(a.Kind, a.Service, now); frozen {
		a.Freeze = name
	}
	if err := p.insert(ctx, a); err != nil {
		return nil, store.ReviewRow{}, err
	}
	if err := p.record(ctx, actor.Actor(), "action.plan", a, map[string]any{"summary": plan.Summary, "risk": plan.Risk, "plan_hash": a.PlanHash, "reason": a.Reason}); err != nil {
		return nil, store.ReviewRow{}, err
	}
	if err := p.record(ctx, actor.Actor(), "action.break_glass", a, map[string]any{"reason": a.Reason, "freeze": a.Freeze}); err != nil {
		return nil, store.ReviewRow{}, err
	}
	// Everyone hears about it before anything runs.
	text := fmt.Sprintf("%s broke the glass: %s\nReason: %s", actor.User.Name, plan.Summary, a.Reason)
	if a.Freeze != "" {
		text += fmt.Sprintf("\nDuring change freeze %q.", a.Freeze)
	}
	p.notify(ctx, notify.Message{Event: "break_glass.used", Severity: "critical", Service: a.Service, All: true,
		Title: fmt.Sprintf("BREAK-GLASS: %s #%d by %s", a.Kind, a.ID, actor.User.Name), Text: text,
		Fields: map[string]string{"risk": a.Risk, "freeze": a.Freeze}, DedupKey: fmt.Sprintf("action-%d-break-glass", a.ID), ActionID: a.ID})
	deadline := p.nowUTC().Add(cfg.Policies.ReviewDeadline())
	review, err := p.store.InsertReview(ctx, store.ReviewRow{ActionID: a.ID, Breaker: actor.User.Name, Required: max(1, cfg.Policies.BreakGlassReviewers),
		State: ReviewOpen, Deadline: deadline, CreatedAt: p.nowUTC()})
	if err != nil {
		return nil, store.ReviewRow{}, err
	}
	if err := p.audit(ctx, actor.Actor(), "review.open", fmt.Sprintf("review:%d", review.ID), "ok",
		map[string]any{"action": a.ID, "required": review.Required, "deadline": store.FormatTime(deadline)}); err != nil {
		return nil, review, err
	}
	p.notify(ctx, notify.Message{Event: "review.opened", Severity: "warning", Service: a.Service,
		Title:    fmt.Sprintf("Review break-glass #%d by %s before %s", a.ID, actor.User.Name, deadline.Format(time.RFC3339)),
		Text:     fmt.Sprintf("%d people other than %s must run: steward review complete %d --notes \"…\"", review.Required, actor.User.Name, review.ID),
		DedupKey: fmt.Sprintf("review-%d", review.ID), ActionID: a.ID})
	if err := p.moveOnly(a, Approved); err != nil {
		return nil, review, err
	}
	approvedAt := p.nowUTC()
	a.ApprovedAt = &approvedAt
	if err := p.save(ctx, a); err != nil {
		return nil, review, err
	}
	a, err = p.run(ctx, actor.Actor(), a)
	return a, review, err
}

// CompleteReview records a reviewer's signoff. The person who broke the
// glass cannot review it; each reviewer counts once; the review completes
// when enough people signed.
func (p *Pipeline) CompleteReview(ctx context.Context, actor auth.Principal, reviewID int64, notes string) (store.ReviewRow, error) {
	r, err := p.store.GetReview(ctx, reviewID)
	if err != nil {
		return store.ReviewRow{}, err
	}
	target := fmt.Sprintf("review:%d", r.ID)
	if strings.TrimSpace(notes) == "" {
		return r, fmt.Errorf("%w: --notes must say what you checked and concluded", ErrReasonRequired)
	}
	if actor.User.Name == r.Breaker {
		_ = p.audit(ctx, actor.Actor(), "review.complete", target, "denied", map[string]any{"why": "self-review"})
		return r, fmt.Errorf("%w: %s broke the glass on action %d; two other people must review it", ErrSelfReview, r.Breaker, r.ActionID)
	}
	if r.State == ReviewCompleted {
		return r, fmt.Errorf("%w: review %d was completed at %s", ErrReviewCompleted, r.ID, r.CompletedAt.Format(time.RFC3339))
	}
	if err := actor.Require(auth.PermRead); err != nil {
		return r, err
	}
	if err := p.store.AddSignoff(ctx, r.ID, store.Signoff{User: actor.User.Name, Notes: notes, CreatedAt: p.nowUTC()}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return r, fmt.Errorf("you already signed review %d; %d of %d signoffs so far: %w", r.ID, len(r.Signoffs), r.Required, err)
		}
		return r, err
	}
	if err := p.audit(ctx, actor.Actor(), "review.signoff", target, "ok", map[string]any{"action": r.ActionID, "notes": notes}); err != nil {
		return r, err
	}
	r, err = p.store.GetReview(ctx, r.ID)
	if err != nil {
		return r, err
	}
	if len(r.Signoffs) >= r.Required {
		now := p.nowUTC()
		if err := p.store.SetReviewState(ctx, r.ID, ReviewCompleted, &now, nil); err != nil {
			return r, err
		}
		r.State, r.CompletedAt = ReviewCompleted, &now
		late := now.After(r.Deadline)
		if err := p.audit(ctx, actor.Actor(), "review.complete", target, "ok", map[string]any{"action": r.ActionID, "late": late}); err != nil {
			return r, err
		}
		p.notify(ctx, notify.Message{Event: "review.completed", Severity: "info", Title: fmt.Sprintf("Break-glass review %d completed", r.ID),
			Text: fmt.Sprintf("Reviewed by %d people (late: %v)", len(r.Signoffs), late), DedupKey: fmt.Sprintf("review-%d", r.ID), Resolve: true, ActionID: r.ActionID})
	}
	return r, nil
}

// Reviews lists reviews, optionally by state.
func (p *Pipeline) Reviews(ctx context.Context, state string) ([]store.ReviewRow, error) {
	return p.store.ListReviews(ctx, state)
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	Expired        int `json:"expired"`
	OverdueAlerted int `json:"overdue_alerted"`
}

// Sweep expires approved actions past their expiry and alerts again on
// overdue reviews (at most once per realert interval). Run it periodically.
func (p *Pipeline) Sweep(ctx context.Context, realert time.Duration) (SweepResult, error) {
	var res SweepResult
	now := p.now()
	approved, err := p.List(ctx, store.ActionFilter{States: []string{string(Approved)}, Limit: 1000})
	if err != nil {
		return res, err
	}
	for _, a := range approved {
		if a.ExpiresAt != nil && !now.Before(*a.ExpiresAt) {
			if err := p.expire(ctx, a); err != nil {
				if errors.Is(err, store.ErrConflict) {
					continue // someone else moved it
				}
				return res, err
			}
			res.Expired++
		}
	}
	open, err := p.store.ListReviews(ctx, ReviewOpen)
	if err != nil {
		return res, err
	}
	for _, r := range open {
		if now.Before(r.Deadline) {
			continue
		}
		if r.LastAlertAt != nil && now.Sub(*r.LastAlertAt) < realert {
			continue
		}
		at := p.nowUTC()
		if err := p.store.SetReviewState(ctx, r.ID, ReviewOpen, nil, &at); err != nil {
			return res, err
		}
		if err := p.audit(ctx, auth.System("pipeline"), "review.overdue", fmt.Sprintf("review:%d", r.ID), "overdue",
			map[string]any{"action": r.ActionID, "deadline": store.FormatTime(r.Deadline), "signoffs": len(r.Signoffs), "required": r.Required}); err != nil {
			return res, err
		}
		p.notify(ctx, notify.Message{Event: "review.overdue", Severity: "warning",
			Title:    fmt.Sprintf("OVERDUE: break-glass review %d (action #%d by %s)", r.ID, r.ActionID, r.Breaker),
			Text:     fmt.Sprintf("Deadline was %s; %d of %d signoffs. Run: steward review complete %d --notes \"…\"", r.Deadline.Format(time.RFC3339), len(r.Signoffs), r.Required, r.ID),
			DedupKey: fmt.Sprintf("review-%d-overdue-%d", r.ID, at.Unix()), ActionID: r.ActionID})
		res.OverdueAlerted++
	}
	return res, nil
}
