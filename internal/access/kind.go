package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// KindName is the action kind of a grant.
const KindName = "access.grant"

// GrantKind is the access.grant action kind: after approval (or through
// break-glass) it creates a dedicated login role for the requester with
// exactly the profile's privileges, until the requested expiry.
type GrantKind struct{ d *Deps }

var _ action.Kind = (*GrantKind)(nil)

// NewGrantKind returns the access.grant kind.
func NewGrantKind(d *Deps) *GrantKind { return &GrantKind{d: d} }

// Deps returns the kind's dependencies (for the CLI and the sweeper).
func (k *GrantKind) Deps() *Deps { return k.d }

// Name implements action.Kind.
func (k *GrantKind) Name() string { return KindName }

// Receiver takes the credential of a grant issued during one call, in the
// memory of the caller that executes the action; nothing else ever holds
// it. Only the grant's requester can be a receiver.
type Receiver struct {
	user string
	mu   sync.Mutex
	cred *Credential
}

// NewReceiver returns a receiver for user (the requester).
func NewReceiver(user string) *Receiver { return &Receiver{user: user} }

// Take returns the credential once; later calls return false.
func (r *Receiver) Take() (Credential, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cred == nil {
		return Credential{}, false
	}
	c := *r.cred
	r.cred = nil
	return c, true
}

func (r *Receiver) put(c Credential) {
	r.mu.Lock()
	r.cred = &c
	r.mu.Unlock()
}

type receiverKey struct{}

// WithReceiver makes the grant executed under ctx hand its credential to r.
// Without one, or with one for someone else than the requester, the grant
// is refused before anything is created: a credential nobody can receive is
// never made.
func WithReceiver(ctx context.Context, r *Receiver) context.Context {
	return context.WithValue(ctx, receiverKey{}, r)
}

func receiverFor(ctx context.Context, requester string) (*Receiver, error) {
	r, _ := ctx.Value(receiverKey{}).(*Receiver)
	if r == nil || r.user != requester {
		return nil, fmt.Errorf("%w: the connection string of this grant is shown once, to %s; %s must run `steward access issue ID`", ErrNotRequester, requester, requester)
	}
	return r, nil
}

func (k *GrantKind) params(a *action.Action) (Params, error) {
	var p Params
	if err := json.Unmarshal(a.Params, &p); err != nil {
		return p, fmt.Errorf("%w: %v", action.ErrBadParams, err)
	}
	if p.Service == "" {
		p.Service = a.Service
	}
	if p.Service != a.Service {
		return p, fmt.Errorf("%w: params name service %q but the action is for %q", action.ErrBadParams, p.Service, a.Service)
	}
	return p, nil
}

// Plan checks the request against the profile. It changes nothing. When
// the pipeline re-plans an approved grant right before executing it, only
// the requester's own call may proceed (see WithReceiver), so that an
// approver's `action execute` cannot burn the approval.
func (k *GrantKind) Plan(ctx context.Context, a *action.Action) (action.Plan, error) {
	p, err := k.params(a)
	if err != nil {
		return action.Plan{}, err
	}
	r, err := k.d.resolve(p)
	if err != nil {
		return action.Plan{}, err
	}
	if a.State == action.Approved {
		if _, err := receiverFor(ctx, a.Requester); err != nil {
			return action.Plan{}, err
		}
	}
	mode := "grant"
	if p.BreakGlass {
		mode = "BREAK-GLASS grant"
	}
	network := r.prof.Network
	if network == "" && r.db.Engine != "postgres" {
		network = "%"
	}
	return action.Plan{
		Summary: fmt.Sprintf("%s %s on %s/%s to %s for %s: %s", mode, p.Profile, p.Service, p.Database, a.Requester, r.duration, strings.Join(r.privs.Statements, "; ")),
		Details: map[string]any{
			"service": p.Service, "database": p.Database, "profile": p.Profile, "engine": r.db.Engine, "grants": r.privs.Statements,
			"schemas": r.privs.Schemas, "duration": r.duration.String(), "max": r.max.String(), "connection_limit": r.prof.ConnectionLimit,
			"network": network, "break_glass": p.BreakGlass,
		},
		Facts: map[string]any{"duration_minutes": int(r.duration / time.Minute), "writes": r.privs.Writes, "ddl": r.privs.DDL,
			"profile": p.Profile, "database": p.Database},
		Risk: r.privs.risk(),
	}, nil
}

// Execute creates the role. The grant row is written first (state
// issuing), so a crash while creating leaves a record the sweeper cleans
// up; a failure drops whatever was created.
func (k *GrantKind) Execute(ctx context.Context, a *action.Action) (action.Result, error) {
	rc, err := receiverFor(ctx, a.Requester)
	if err != nil {
		return action.Result{Summary: "not issued: " + err.Error()}, err
	}
	p, err := k.params(a)
	if err != nil {
		return action.Result{}, err
	}
	if p.BreakGlass != a.BreakGlass {
		err := fmt.Errorf("%w: break-glass grants go through `steward access break-glass`, approved ones through `steward access request`", action.ErrBadParams)
		return action.Result{Summary: "not issued: " + err.Error()}, err
	}
	r, err := k.d.resolve(p)
	if err != nil {
		return action.Result{Summary: "not issued: " + err.Error()}, err
	}
	g, cred, err := k.d.issue(ctx, a, r)
	res := action.Result{Details: map[string]any{"grant_id": g.ID, "role": g.RoleName, "engine": g.Engine}}
	if err != nil {
		res.Summary = fmt.Sprintf("grant %d not issued: %v", g.ID, err)
		return res, err
	}
	rc.put(cred)
	res.Summary = fmt.Sprintf("grant %d: role %s on %s/%s (%s) until %s; the connection string was handed to %s once",
		g.ID, g.RoleName, g.Service, g.Database, g.Profile, g.ExpiresAt.Format(time.RFC3339), a.Requester)
	res.Details["expires_at"] = store.FormatTime(g.ExpiresAt)
	res.Details["profile"] = g.Profile
	return res, nil
}

// Verify checks the grant is recorded active and its role exists.
func (k *GrantKind) Verify(ctx context.Context, a *action.Action, res action.Result) error {
	id, _ := res.Details["grant_id"].(int64)
	if f, ok := res.Details["grant_id"].(float64); ok {
		id = int64(f)
	}
	g, err := k.d.Store.GetGrant(ctx, id)
	if err != nil {
		return err
	}
	if g.State != StateActive {
		return fmt.Errorf("grant %d is %s, want active", g.ID, g.State)
	}
	t, err := k.d.target(g.Service, g.Database)
	if err != nil {
		return err
	}
	ops, err := opsFor(g.Engine)
	if err != nil {
		return err
	}
	admin, err := t.openAdmin(ctx, 1)
	if err != nil {
		return err
	}
	defer admin.Close()
	ok, err := ops.exists(ctx, admin, g.RoleName)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("grant %d: role %s does not exist after creation", g.ID, g.RoleName)
	}
	return nil
}

// issue records the grant, creates the role and returns the credential.
func (d *Deps) issue(ctx context.Context, a *action.Action, r *resolved) (store.GrantRow, Credential, error) {
	t, err := newTarget(r.params.Service, r.db)
	if err != nil {
		return store.GrantRow{}, Credential{}, err
	}
	ops, err := opsFor(r.db.Engine)
	if err != nil {
		return store.GrantRow{}, Credential{}, err
	}
	start := d.now()
	g, err := d.Store.InsertGrant(ctx, store.GrantRow{ActionID: a.ID, Service: r.params.Service, Database: r.params.Database, Profile: r.params.Profile,
		Engine: r.db.Engine, Requester: a.Requester, Reason: a.Reason, RoleName: "pending_" + randSuffix() + randSuffix(), State: StateIssuing,
		BreakGlass: a.BreakGlass, CreatedAt: start, ExpiresAt: start.Add(r.duration)})
	if err != nil {
		return g, Credential{}, err
	}
	g.RoleName = roleName(a.Requester, g.ID)
	if err := d.Store.UpdateGrant(ctx, g, StateIssuing); err != nil {
		return g, Credential{}, err
	}
	password := newPassword()
	spec := roleSpec{role: g.RoleName, password: password, expires: g.ExpiresAt, connLimit: max(1, r.prof.ConnectionLimit), network: r.prof.Network,
		privs: r.privs, comment: fmt.Sprintf("steward grant %d for %s until %s (action %d)", g.ID, a.Requester, store.FormatTime(g.ExpiresAt), a.ID)}
	var leftover bool
	admin, err := t.openAdmin(ctx, 1)
	if err == nil {
		// Grants issued at the same moment may collide on the same ACLs.
		err = retryTransient(ctx, func() (err error) {
			leftover, err = ops.create(ctx, admin, t, spec)
			return err
		})
		admin.Close()
	}
	target := fmt.Sprintf("grant:%d", g.ID)
	details := map[string]any{"action": a.ID, "service": g.Service, "database": g.Database, "profile": g.Profile, "role": g.RoleName,
		"engine": g.Engine, "requester": g.Requester, "break_glass": g.BreakGlass, "expires_at": store.FormatTime(g.ExpiresAt)}
	rctx := context.WithoutCancel(ctx)
	if err != nil {
		g.LastError = err.Error()
		from := g.State
		if leftover {
			// It may exist: revoke it like any other, with proof.
			now := d.now()
			g.State, g.RevokeAfter = StateRevoking, &now
			g.Revocation = mustJSON(Revocation{Reason: "issuing failed: " + err.Error(), By: "system:access", RequestedAt: now})
		} else {
			g.State = StateFailed
		}
		if uerr := d.Store.UpdateGrant(rctx, g, from); uerr != nil {
			err = errors.Join(err, uerr)
		}
		details["error"] = err.Error()
		details["left_for_revocation"] = leftover
		_ = d.audit(rctx, auth.System("access"), "access.grant", target, "error", details)
		return g, Credential{}, fmt.Errorf("create role on %s/%s: %w", g.Service, g.Database, err)
	}
	cred, err := t.credential(g.RoleName, password)
	if err != nil {
		return g, Credential{}, err
	}
	issued := d.now()
	g.State, g.IssuedAt, g.CredentialHash = StateActive, &issued, credentialHash(password)
	if err := d.Store.UpdateGrant(rctx, g, StateIssuing); err != nil {
		return g, Credential{}, err
	}
	cred.GrantID, cred.ExpiresAt = g.ID, g.ExpiresAt
	details["issued_at"] = store.FormatTime(issued)
	if err := d.audit(rctx, auth.System("access"), "access.grant", target, "ok", details); err != nil {
		return g, Credential{}, err
	}
	if a.BreakGlass {
		d.notify(rctx, notify.Message{Event: "access.break_glass", Severity: notify.SeverityCritical, Service: g.Service, All: true,
			Title: fmt.Sprintf("BREAK-GLASS access: %s has %s on %s/%s until %s", g.Requester, g.Profile, g.Service, g.Database, g.ExpiresAt.Format(time.RFC3339)),
			Text:  "Reason: " + g.Reason, DedupKey: fmt.Sprintf("grant-%d-break-glass", g.ID), ActionID: a.ID})
	}
	return g, cred, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Issue executes an approved access.grant action as its requester and
// returns the credential, which exists only in the returned value.
func Issue(ctx context.Context, p *action.Pipeline, actor auth.Principal, id int64) (*action.Action, *Credential, error) {
	rc := NewReceiver(actor.User.Name)
	a, err := p.Execute(WithReceiver(ctx, rc), actor, id)
	if c, ok := rc.Take(); ok {
		return a, &c, err
	}
	return a, nil, err
}

// BreakGlass issues a grant at once through the pipeline's break-glass path
// (every channel notified, the action flagged, a review opened).
func BreakGlass(ctx context.Context, p *action.Pipeline, actor auth.Principal, req action.Request) (*action.Action, store.ReviewRow, *Credential, error) {
	rc := NewReceiver(actor.User.Name)
	a, review, err := p.BreakGlass(WithReceiver(ctx, rc), actor, req)
	if c, ok := rc.Take(); ok {
		return a, review, &c, err
	}
	return a, review, nil, err
}

// Request builds the action request of a grant.
func Request(service, database, profile, duration, reason, ticket string, breakGlass bool) action.Request {
	b, _ := json.Marshal(Params{Service: service, Database: database, Profile: profile, For: duration, BreakGlass: breakGlass})
	return action.Request{Kind: KindName, Service: service, Target: database + "/" + profile, Params: b, Reason: reason, Ticket: ticket}
}

// WaitApproved polls the action until it is no longer pending approval, or
// ctx ends.
func WaitApproved(ctx context.Context, p *action.Pipeline, id int64, poll time.Duration) (*action.Action, error) {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		a, err := p.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if a.State != action.PendingApproval && a.State != action.Planned {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-t.C:
		}
	}
}
