package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

// Notifier queues a notification; the outbox delivers it (notify.Outbox).
type Notifier interface {
	Enqueue(ctx context.Context, m notify.Message) ([]int64, error)
}

// Options configure a Pipeline.
type Options struct {
	Store    *store.Store
	Kinds    *Registry
	Config   *config.Config
	Audit    auth.AuditFunc
	Notifier Notifier // optional
	Logger   *slog.Logger
	Now      func() time.Time
	// BaseURL links notifications to the web UI, e.g. http://steward:8080.
	BaseURL string
}

// Pipeline runs actions through plan, policy, approvals, execution,
// verification and audit.
type Pipeline struct {
	store    *store.Store
	kinds    *Registry
	audit    auth.AuditFunc
	notifier Notifier
	log      *slog.Logger
	now      func() time.Time
	baseURL  string

	mu     sync.RWMutex
	cfg    *config.Config
	engine *policy.Engine
}

// New returns a pipeline; it fails when the policy does not compile.
func New(opts Options) (*Pipeline, error) {
	p := &Pipeline{store: opts.Store, kinds: opts.Kinds, audit: opts.Audit, notifier: opts.Notifier, log: opts.Logger, now: opts.Now, baseURL: opts.BaseURL}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.audit == nil {
		return nil, errors.New("action pipeline: an audit function is required")
	}
	if err := p.SetConfig(opts.Config); err != nil {
		return nil, err
	}
	return p, nil
}

// SetConfig swaps in a reloaded config and its policy.
func (p *Pipeline) SetConfig(cfg *config.Config) error {
	eng, err := policy.New(cfg.Policies)
	if err != nil {
		return fmt.Errorf("approval policy: %w", err)
	}
	p.mu.Lock()
	p.cfg, p.engine = cfg, eng
	p.mu.Unlock()
	return nil
}

func (p *Pipeline) current() (*config.Config, *policy.Engine) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg, p.engine
}

// Config returns the config the pipeline currently runs with.
func (p *Pipeline) Config() *config.Config {
	cfg, _ := p.current()
	return cfg
}

// Kinds returns the registry.
func (p *Pipeline) Kinds() *Registry { return p.kinds }

func (p *Pipeline) nowUTC() time.Time { return p.now().UTC().Truncate(time.Microsecond) }

// Create plans a new action and submits it for approval (or approves it at
// once when the matching rule auto-approves).
func (p *Pipeline) Create(ctx context.Context, actor auth.Principal, req Request) (*Action, error) {
	if err := actor.Require(auth.PermOperate); err != nil {
		return nil, err
	}
	a, kind, err := p.newAction(actor, req)
	if err != nil {
		return nil, err
	}
	plan, err := kind.Plan(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", a.Kind, err)
	}
	a.Plan, a.Risk, a.PlanHash, a.PlanVersion = plan, plan.Risk, PlanHash(a, plan), 1
	a.State = Planned
	if err := p.insert(ctx, a); err != nil {
		return nil, err
	}
	if err := p.record(ctx, actor.Actor(), "action.plan", a, map[string]any{"summary": plan.Summary, "risk": plan.Risk, "plan_hash": a.PlanHash, "reason": a.Reason, "ticket": a.Ticket}); err != nil {
		return nil, err
	}
	return p.submit(ctx, actor.Actor(), a)
}

func (p *Pipeline) newAction(actor auth.Principal, req Request) (*Action, Kind, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return nil, nil, fmt.Errorf("%w: say why (e.g. --reason \"INC-42: roll out hotfix\")", ErrReasonRequired)
	}
	kind, err := p.kinds.Get(req.Kind)
	if err != nil {
		return nil, nil, err
	}
	cfg, _ := p.current()
	if req.Service != "" && cfg.Service(req.Service) == nil {
		names := make([]string, 0, len(cfg.Services))
		for _, s := range cfg.Services {
			names = append(names, s.Name)
		}
		return nil, nil, fmt.Errorf("%w %q (configured: %s)", ErrUnknownService, req.Service, strings.Join(names, ", "))
	}
	params := req.Params
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	if !json.Valid(params) {
		return nil, nil, fmt.Errorf("%w: params are not valid JSON", ErrBadParams)
	}
	return &Action{
		Kind: req.Kind, Service: req.Service, Target: req.Target, Params: params,
		Requester: actor.User.Name, Reason: strings.TrimSpace(req.Reason), Ticket: req.Ticket,
	}, kind, nil
}

// submit evaluates the policy for a planned (or re-planned) action.
func (p *Pipeline) submit(ctx context.Context, actor string, a *Action) (*Action, error) {
	_, eng := p.current()
	prop := p.proposal(a)
	rule := eng.Match(prop)
	a.Rule = rule.Name
	d := eng.Evaluate(prop, nil, p.now())
	if d.State == "approved" && d.AutoApproved {
		return a, p.approve(ctx, "system:policy", a, rule.Expiry, map[string]any{"rule": rule.Name, "auto_approved": true})
	}
	if err := p.move(ctx, a, PendingApproval); err != nil {
		return nil, err
	}
	if err := p.record(ctx, actor, "action.pending", a, map[string]any{"rule": rule.Name, "requires": d.Missing}); err != nil {
		return nil, err
	}
	p.notify(ctx, notify.Message{
		Event: "action.pending", Severity: "info", Service: a.Service,
		Title:    fmt.Sprintf("Approval needed: %s #%d", a.Kind, a.ID),
		Text:     fmt.Sprintf("%s requests %s: %s\nReason: %s\nNeeds: %s", a.Requester, a.Kind, a.Plan.Summary, a.Reason, d.Missing),
		Fields:   map[string]string{"risk": a.Risk, "rule": rule.Name, "requester": a.Requester},
		DedupKey: fmt.Sprintf("action-%d-pending-%d", a.ID, a.PlanVersion), ActionID: a.ID, Buttons: true,
	})
	return a, nil
}

func (p *Pipeline) proposal(a *Action) policy.Proposal {
	cfg, _ := p.current()
	prop := policy.Proposal{Kind: a.Kind, Service: a.Service, Risk: a.Risk, Facts: a.Plan.Facts, Requester: a.Requester, PlanHash: a.PlanHash}
	if s := cfg.Service(a.Service); s != nil {
		prop.Tier, prop.Labels = s.Tier, s.Labels
	}
	return prop
}

// Decision is the policy's view of an action and its votes right now.
func (p *Pipeline) Decision(ctx context.Context, a *Action) (policy.Decision, error) {
	votes, err := p.votes(ctx, a.ID)
	if err != nil {
		return policy.Decision{}, err
	}
	_, eng := p.current()
	return eng.Evaluate(p.proposal(a), votes, p.now()), nil
}

func (p *Pipeline) votes(ctx context.Context, id int64) ([]policy.Vote, error) {
	rows, err := p.store.ListApprovals(ctx, id)
	if err != nil {
		return nil, err
	}
	votes := make([]policy.Vote, 0, len(rows))
	roles := map[string][]string{}
	for _, r := range rows {
		// Roles are those the person holds now: a revoked role stops counting.
		rs, ok := roles[r.User]
		if !ok {
			if u, err := p.store.GetUser(ctx, r.User); err == nil && !u.Disabled() {
				rs = u.Roles
			}
			roles[r.User] = rs
		}
		votes = append(votes, policy.Vote{User: r.User, Roles: rs, Decision: r.Decision, PlanHash: r.PlanHash, At: r.CreatedAt})
	}
	return votes, nil
}

// Vote is an approve or reject by a person.
type Vote struct {
	Decision string // approve | reject
	Comment  string
	Via      string // cli | api | ui | slack
	// PlanHash, when set, pins the vote to the plan the person looked at.
	PlanHash string
}

// Approve records an approval; Reject a rejection. Both return the action
// and the policy decision after the vote.
func (p *Pipeline) Approve(ctx context.Context, actor auth.Principal, id int64, v Vote) (*Action, policy.Decision, error) {
	v.Decision = "approve"
	return p.vote(ctx, actor, id, v)
}

// Reject records a rejection; a comment is required.
func (p *Pipeline) Reject(ctx context.Context, actor auth.Principal, id int64, v Vote) (*Action, policy.Decision, error) {
	v.Decision = "reject"
	if strings.TrimSpace(v.Comment) == "" {
		return nil, policy.Decision{}, fmt.Errorf("%w: a rejection needs a comment saying why", ErrReasonRequired)
	}
	return p.vote(ctx, actor, id, v)
}

func (p *Pipeline) vote(ctx context.Context, actor auth.Principal, id int64, v Vote) (*Action, policy.Decision, error) {
	a, err := p.Get(ctx, id)
	if err != nil {
		return nil, policy.Decision{}, err
	}
	deny := func(cause error, msg string) (*Action, policy.Decision, error) {
		_ = p.record(ctx, actor.Actor(), "action."+v.Decision, a, map[string]any{"outcome": "denied", "why": msg})
		return a, policy.Decision{}, fmt.Errorf("%w: %s", cause, msg)
	}
	if a.State != PendingApproval {
		return deny(ErrAlreadyDecided, fmt.Sprintf("action %d is %s", a.ID, a.State))
	}
	if actor.User.Name == a.Requester {
		return deny(ErrSelfApproval, fmt.Sprintf("%s requested action %d; someone else must %s it", a.Requester, a.ID, v.Decision))
	}
	if v.PlanHash != "" && v.PlanHash != a.PlanHash {
		return deny(ErrPlanChanged, fmt.Sprintf("you reviewed plan %s but action %d now has plan %s; review `steward action show %d` again", short(v.PlanHash), a.ID, short(a.PlanHash), a.ID))
	}
	votes, err := p.votes(ctx, a.ID)
	if err != nil {
		return nil, policy.Decision{}, err
	}
	now := p.now()
	mine := policy.Vote{User: actor.User.Name, Roles: actor.User.Roles, Decision: v.Decision, PlanHash: a.PlanHash, At: now}
	_, eng := p.current()
	d := eng.Evaluate(p.proposal(a), append(votes, mine), now)
	for _, ig := range d.Ignored {
		if ig.User == actor.User.Name && strings.HasPrefix(ig.Reason, "not eligible") {
			return deny(ErrNotEligible, fmt.Sprintf("%s: %s", actor.User.Name, ig.Reason))
		}
	}
	if _, err := p.store.InsertApproval(ctx, store.ApprovalRow{ActionID: a.ID, User: actor.User.Name, Decision: v.Decision, Comment: v.Comment,
		PlanHash: a.PlanHash, Roles: actor.User.Roles, Via: v.Via, CreatedAt: now}); err != nil {
		return nil, d, err
	}
	if err := p.record(ctx, actor.Actor(), "action."+v.Decision, a, map[string]any{"comment": v.Comment, "via": v.Via, "plan_hash": a.PlanHash, "missing": d.Missing}); err != nil {
		return nil, d, err
	}
	switch d.State {
	case "approved":
		rule := eng.Match(p.proposal(a))
		if err := p.approve(ctx, actor.Actor(), a, rule.Expiry, map[string]any{"rule": rule.Name, "approvers": counted(d)}); err != nil {
			return nil, d, err
		}
	case "rejected":
		if err := p.move(ctx, a, Rejected); err != nil {
			return nil, d, err
		}
		fin := p.nowUTC()
		a.FinishedAt = &fin
		if err := p.save(ctx, a); err != nil {
			return nil, d, err
		}
		if err := p.record(ctx, actor.Actor(), "action.rejected", a, map[string]any{"comment": v.Comment}); err != nil {
			return nil, d, err
		}
		p.notify(ctx, notify.Message{Event: "action.rejected", Severity: "info", Service: a.Service,
			Title: fmt.Sprintf("Rejected: %s #%d", a.Kind, a.ID), Text: fmt.Sprintf("%s rejected: %s", actor.User.Name, v.Comment),
			DedupKey: fmt.Sprintf("action-%d-pending-%d", a.ID, a.PlanVersion), Resolve: true, ActionID: a.ID})
	}
	return a, d, nil
}

func counted(d policy.Decision) []string {
	var out []string
	for _, g := range d.Groups {
		out = append(out, g.Counted...)
	}
	return out
}

// approve moves an action to approved with its expiry.
func (p *Pipeline) approve(ctx context.Context, actor string, a *Action, expiry time.Duration, details map[string]any) error {
	if err := p.moveOnly(a, Approved); err != nil {
		return err
	}
	now := p.nowUTC()
	a.ApprovedAt = &now
	if expiry > 0 {
		exp := now.Add(expiry)
		a.ExpiresAt = &exp
		details["expires_at"] = store.FormatTime(exp)
	}
	if err := p.save(ctx, a); err != nil {
		return err
	}
	if err := p.record(ctx, actor, "action.approved", a, details); err != nil {
		return err
	}
	p.notify(ctx, notify.Message{Event: "action.approved", Severity: "info", Service: a.Service,
		Title: fmt.Sprintf("Approved: %s #%d", a.Kind, a.ID), Text: a.Plan.Summary,
		DedupKey: fmt.Sprintf("action-%d-pending-%d", a.ID, a.PlanVersion), Resolve: true, ActionID: a.ID})
	return nil
}

// Replan runs the dry run again. If the plan differs, the action goes back
// to pending approval and every earlier approval is void (they name the old
// plan hash).
func (p *Pipeline) Replan(ctx context.Context, actor auth.Principal, id int64) (*Action, bool, error) {
	a, err := p.Get(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if a.State != PendingApproval && a.State != Approved {
		return a, false, fmt.Errorf("%w: action %d is %s", ErrBadTransition, a.ID, a.State)
	}
	changed, err := p.replan(ctx, actor.Actor(), a)
	return a, changed, err
}

func (p *Pipeline) replan(ctx context.Context, actor string, a *Action) (bool, error) {
	kind, err := p.kinds.Get(a.Kind)
	if err != nil {
		return false, err
	}
	plan, err := kind.Plan(ctx, a)
	if err != nil {
		return false, fmt.Errorf("re-plan %s #%d: %w", a.Kind, a.ID, err)
	}
	hash := PlanHash(a, plan)
	if hash == a.PlanHash {
		return false, nil
	}
	old := a.PlanHash
	a.Plan, a.Risk, a.PlanHash = plan, plan.Risk, hash
	a.PlanVersion++
	a.ApprovedAt, a.ExpiresAt = nil, nil
	if err := p.record(ctx, actor, "action.replan", a, map[string]any{"old_plan_hash": old, "new_plan_hash": hash, "summary": plan.Summary, "approvals": "void"}); err != nil {
		return true, err
	}
	_, err = p.submit(ctx, actor, a)
	return true, err
}

// Execute runs an approved action. It re-checks everything at the last
// moment: the state, the policy decision over the recorded votes, expiry,
// change freezes, and the plan (re-planned; a different plan voids the
// approvals). There is no other way to execute an action.
func (p *Pipeline) Execute(ctx context.Context, actor auth.Principal, id int64) (*Action, error) {
	if err := actor.Require(auth.PermOperate); err != nil {
		return nil, err
	}
	a, err := p.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	refuse := func(cause error, msg string) (*Action, error) {
		_ = p.record(ctx, actor.Actor(), "action.execute", a, map[string]any{"outcome": "denied", "why": msg})
		return a, fmt.Errorf("%w: %s", cause, msg)
	}
	if a.State != Approved {
		return refuse(ErrNotApproved, fmt.Sprintf("action %d is %s", a.ID, a.State))
	}
	now := p.now()
	if a.ExpiresAt != nil && !now.Before(*a.ExpiresAt) {
		if err := p.expire(ctx, a); err != nil {
			return nil, err
		}
		return a, fmt.Errorf("%w: action %d was approved at %s and not executed before %s; request it again", ErrExpired, a.ID,
			a.ApprovedAt.Format(time.RFC3339), a.ExpiresAt.Format(time.RFC3339))
	}
	if !a.BreakGlass {
		d, err := p.Decision(ctx, a)
		if err != nil {
			return nil, err
		}
		if d.State != "approved" {
			return refuse(ErrNotApproved, fmt.Sprintf("action %d: the recorded approvals no longer satisfy rule %s: %s", a.ID, d.Rule, d.Missing))
		}
		_, eng := p.current()
		if name, until, frozen := eng.Frozen(a.Kind, a.Service, now); frozen {
			return refuse(ErrFrozen, fmt.Sprintf("change freeze %q is active until %s; wait, or use break-glass if this cannot wait", name, until.Format(time.RFC3339)))
		}
	}
	changed, err := p.replan(ctx, actor.Actor(), a)
	if err != nil {
		return nil, err
	}
	if changed {
		return a, fmt.Errorf("%w: action %d was re-planned at execution and now needs approval again", ErrPlanChanged, a.ID)
	}
	return p.run(ctx, actor.Actor(), a)
}

// run moves an approved action through executing to succeeded or failed.
// The move to executing is a compare-and-swap: two executors cannot both run.
func (p *Pipeline) run(ctx context.Context, actor string, a *Action) (*Action, error) {
	kind, err := p.kinds.Get(a.Kind)
	if err != nil {
		return nil, err
	}
	if err := p.move(ctx, a, Executing); err != nil {
		return nil, err
	}
	now := p.nowUTC()
	a.ExecutedAt = &now
	if err := p.save(ctx, a); err != nil {
		return nil, err
	}
	if err := p.record(ctx, actor, "action.execute", a, map[string]any{"break_glass": a.BreakGlass, "freeze": a.Freeze}); err != nil {
		return nil, err
	}
	res, execErr := kind.Execute(ctx, a)
	if execErr == nil {
		execErr = kind.Verify(ctx, a, res)
	}
	fin := p.nowUTC()
	a.FinishedAt = &fin
	a.Result = &res
	final, event, sev := Succeeded, "action.succeeded", "info"
	if execErr != nil {
		final, event, sev = Failed, "action.failed", "warning"
		a.Error = execErr.Error()
	}
	if err := p.moveOnly(a, final); err != nil {
		return nil, err
	}
	// The outcome must be recorded even if the caller's context ended.
	rctx := context.WithoutCancel(ctx)
	if err := p.save(rctx, a); err != nil {
		return nil, err
	}
	details := map[string]any{"summary": res.Summary, "duration_ms": fin.Sub(now).Milliseconds(), "break_glass": a.BreakGlass}
	if execErr != nil {
		details["error"] = execErr.Error()
	}
	if err := p.record(rctx, actor, event, a, details); err != nil {
		return nil, err
	}
	p.notify(rctx, notify.Message{Event: event, Severity: sev, Service: a.Service,
		Title: fmt.Sprintf("%s: %s #%d", strings.ToUpper(string(final[:1]))+string(final[1:]), a.Kind, a.ID), Text: res.Summary + errText(execErr),
		DedupKey: fmt.Sprintf("action-%d-%s", a.ID, final), ActionID: a.ID})
	if execErr != nil {
		return a, fmt.Errorf("action %d %s: %w", a.ID, a.Kind, execErr)
	}
	return a, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "\nError: " + err.Error()
}

// Cancel withdraws an action that has not started executing. The requester
// or an admin may cancel.
func (p *Pipeline) Cancel(ctx context.Context, actor auth.Principal, id int64, why string) (*Action, error) {
	a, err := p.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if actor.User.Name != a.Requester {
		if err := actor.Require(auth.PermAdmin); err != nil {
			return nil, fmt.Errorf("only the requester (%s) or an admin may cancel action %d: %w", a.Requester, a.ID, err)
		}
	}
	if err := p.move(ctx, a, Cancelled); err != nil {
		return nil, err
	}
	fin := p.nowUTC()
	a.FinishedAt = &fin
	if err := p.save(ctx, a); err != nil {
		return nil, err
	}
	if err := p.record(ctx, actor.Actor(), "action.cancel", a, map[string]any{"why": why}); err != nil {
		return nil, err
	}
	p.notify(ctx, notify.Message{Event: "action.cancelled", Severity: "info", Service: a.Service,
		Title: fmt.Sprintf("Cancelled: %s #%d", a.Kind, a.ID), Text: why,
		DedupKey: fmt.Sprintf("action-%d-pending-%d", a.ID, a.PlanVersion), Resolve: true, ActionID: a.ID})
	return a, nil
}

func (p *Pipeline) expire(ctx context.Context, a *Action) error {
	if err := p.move(ctx, a, Expired); err != nil {
		return err
	}
	fin := p.nowUTC()
	a.FinishedAt = &fin
	if err := p.save(ctx, a); err != nil {
		return err
	}
	return p.record(ctx, auth.System("pipeline"), "action.expire", a, map[string]any{"approved_at": timeStr(a.ApprovedAt), "expires_at": timeStr(a.ExpiresAt)})
}

func timeStr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return store.FormatTime(*t)
}

// Get loads an action.
func (p *Pipeline) Get(ctx context.Context, id int64) (*Action, error) {
	row, err := p.store.GetAction(ctx, id)
	if err != nil {
		return nil, err
	}
	return fromRow(row), nil
}

// List returns actions newest first.
func (p *Pipeline) List(ctx context.Context, f store.ActionFilter) ([]*Action, error) {
	rows, err := p.store.ListActions(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]*Action, 0, len(rows))
	for _, r := range rows {
		out = append(out, fromRow(r))
	}
	return out, nil
}

// Approvals returns the votes recorded on an action.
func (p *Pipeline) Approvals(ctx context.Context, id int64) ([]store.ApprovalRow, error) {
	return p.store.ListApprovals(ctx, id)
}

// move changes state in memory and in the store (compare-and-swap).
func (p *Pipeline) move(ctx context.Context, a *Action, to State) error {
	if err := p.moveOnly(a, to); err != nil {
		return err
	}
	return p.save(ctx, a)
}

func (p *Pipeline) moveOnly(a *Action, to State) error {
	if !canMove(a.State, to) {
		return fmt.Errorf("%w: action %d is %s and cannot become %s", ErrBadTransition, a.ID, a.State, to)
	}
	a.State = to
	return nil
}

func (p *Pipeline) insert(ctx context.Context, a *Action) error {
	row := toRow(a)
	row.CreatedAt = p.nowUTC()
	row, err := p.store.InsertAction(ctx, row)
	if err != nil {
		return err
	}
	*a = *fromRow(row)
	return nil
}

func (p *Pipeline) save(ctx context.Context, a *Action) error {
	row, err := p.store.UpdateAction(ctx, toRow(a))
	if err != nil {
		return err
	}
	a.version, a.UpdatedAt = row.Version, row.UpdatedAt
	return nil
}

// record writes the audit event of a transition.
func (p *Pipeline) record(ctx context.Context, actor, event string, a *Action, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	details["kind"] = a.Kind
	details["state"] = string(a.State)
	if a.Service != "" {
		details["service"] = a.Service
	}
	if a.BreakGlass {
		details["break_glass"] = true
	}
	outcome := "ok"
	if o, ok := details["outcome"].(string); ok {
		outcome = o
		delete(details, "outcome")
	}
	return p.audit(ctx, actor, event, fmt.Sprintf("action:%d", a.ID), outcome, details)
}

func (p *Pipeline) notify(ctx context.Context, m notify.Message) {
	if p.notifier == nil {
		return
	}
	if m.Link == "" && p.baseURL != "" && m.ActionID != 0 {
		m.Link = fmt.Sprintf("%s/actions/%d", strings.TrimSuffix(p.baseURL, "/"), m.ActionID)
	}
	if _, err := p.notifier.Enqueue(ctx, m); err != nil {
		// The outbox is in the same store; failing to enqueue means the store
		// is failing, which the caller sees on its next write. Log loudly.
		p.log.Error("enqueue notification", "event", m.Event, "err", err)
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func toRow(a *Action) store.ActionRow {
	details, _ := json.Marshal(a.Plan)
	var result []byte
	if a.Result != nil {
		result, _ = json.Marshal(a.Result)
	} else {
		result = []byte("{}")
	}
	return store.ActionRow{
		ID: a.ID, Kind: a.Kind, Service: a.Service, Target: a.Target, Params: string(a.Params), Requester: a.Requester,
		Reason: a.Reason, Ticket: a.Ticket, State: string(a.State), Risk: a.Risk, PlanSummary: a.Plan.Summary,
		PlanDetails: string(details), PlanHash: a.PlanHash, PlanVersion: a.PlanVersion, Rule: a.Rule, Requirement: "{}",
		BreakGlass: a.BreakGlass, Freeze: a.Freeze, Result: string(result), Error: a.Error, CreatedAt: a.CreatedAt,
		ApprovedAt: a.ApprovedAt, ExpiresAt: a.ExpiresAt, ExecutedAt: a.ExecutedAt, FinishedAt: a.FinishedAt, Version: a.version,
	}
}

func fromRow(r store.ActionRow) *Action {
	a := &Action{
		ID: r.ID, Kind: r.Kind, Service: r.Service, Target: r.Target, Params: json.RawMessage(r.Params), Requester: r.Requester,
		Reason: r.Reason, Ticket: r.Ticket, State: State(r.State), Risk: r.Risk, PlanHash: r.PlanHash, PlanVersion: r.PlanVersion,
		Rule: r.Rule, BreakGlass: r.BreakGlass, Freeze: r.Freeze, Error: r.Error, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		ApprovedAt: r.ApprovedAt, ExpiresAt: r.ExpiresAt, ExecutedAt: r.ExecutedAt, FinishedAt: r.FinishedAt, version: r.Version,
	}
	_ = json.Unmarshal([]byte(r.PlanDetails), &a.Plan)
	if r.Result != "" && r.Result != "{}" {
		var res Result
		if json.Unmarshal([]byte(r.Result), &res) == nil {
			a.Result = &res
		}
	}
	return a
}
