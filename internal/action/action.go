package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// State is where an action is in its life.
type State string

// States. Terminal: succeeded, failed, rejected, expired, cancelled.
const (
	Planned         State = "planned"
	PendingApproval State = "pending_approval"
	Approved        State = "approved"
	Executing       State = "executing"
	Succeeded       State = "succeeded"
	Failed          State = "failed"
	Rejected        State = "rejected"
	Expired         State = "expired"
	Cancelled       State = "cancelled"
)

// Terminal reports whether no further transition is possible.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Rejected, Expired, Cancelled:
		return true
	}
	return false
}

// transitions lists every allowed state change; anything else is refused.
var transitions = map[State][]State{
	Planned:         {PendingApproval, Approved, Cancelled},
	PendingApproval: {PendingApproval, Approved, Rejected, Cancelled, Expired},
	Approved:        {PendingApproval, Executing, Expired, Cancelled},
	Executing:       {Succeeded, Failed},
}

func canMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Risk levels, computed by the kind from its plan.
const (
	RiskLow      = "low"
	RiskMedium   = "medium"
	RiskHigh     = "high"
	RiskCritical = "critical"
)

// Sentinel errors.
var (
	ErrUnknownKind     = errors.New("unknown action kind")
	ErrReasonRequired  = errors.New("a reason is required")
	ErrUnknownService  = errors.New("unknown service")
	ErrNotApproved     = errors.New("action is not approved")
	ErrSelfApproval    = errors.New("requester cannot approve their own action")
	ErrNotEligible     = errors.New("not eligible to approve this action")
	ErrAlreadyDecided  = errors.New("action is no longer pending")
	ErrPlanChanged     = errors.New("plan changed; earlier approvals are void")
	ErrFrozen          = errors.New("change freeze in effect")
	ErrExpired         = errors.New("approval expired")
	ErrBadTransition   = errors.New("state change not allowed")
	ErrNoBreakGlass    = errors.New("break-glass permission required")
	ErrSelfReview      = errors.New("the person who broke the glass cannot review it")
	ErrReviewCompleted = errors.New("review already completed")
	ErrBadParams       = errors.New("invalid action parameters")
)

// Plan is the result of a dry run: what would happen, for people and for
// machines, and how risky it is.
type Plan struct {
	Summary string         `json:"summary"`
	Details map[string]any `json:"details,omitempty"`
	// Facts are the numbers policies match on, e.g. rows_affected.
	Facts map[string]any `json:"facts,omitempty"`
	Risk  string         `json:"risk"`
}

// Result is what execution did.
type Result struct {
	Summary string         `json:"summary"`
	Details map[string]any `json:"details,omitempty"`
}

// Action is a requested change and everything known about it.
type Action struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	Service     string          `json:"service,omitempty"`
	Target      string          `json:"target,omitempty"`
	Params      json.RawMessage `json:"params"`
	Requester   string          `json:"requester"`
	Reason      string          `json:"reason"`
	Ticket      string          `json:"ticket,omitempty"`
	State       State           `json:"state"`
	Risk        string          `json:"risk"`
	Plan        Plan            `json:"plan"`
	PlanHash    string          `json:"plan_hash"`
	PlanVersion int             `json:"plan_version"`
	Rule        string          `json:"rule"`
	BreakGlass  bool            `json:"break_glass"`
	Freeze      string          `json:"freeze,omitempty"`
	Result      *Result         `json:"result,omitempty"`
	Error       string          `json:"error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	ApprovedAt  *time.Time      `json:"approved_at,omitempty"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	ExecutedAt  *time.Time      `json:"executed_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
	version     int
}

// Request asks for an action.
type Request struct {
	Kind    string          `json:"kind"`
	Service string          `json:"service,omitempty"`
	Target  string          `json:"target,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Reason  string          `json:"reason"`
	Ticket  string          `json:"ticket,omitempty"`
}

// Kind is one type of change. Plan must not change anything; Execute does
// the change; Verify checks it took effect.
type Kind interface {
	Name() string
	Plan(ctx context.Context, a *Action) (Plan, error)
	Execute(ctx context.Context, a *Action) (Result, error)
	Verify(ctx context.Context, a *Action, r Result) error
}

// Undoer is implemented by kinds whose changes can be reversed.
type Undoer interface {
	Undo(ctx context.Context, a *Action) (Result, error)
}

// Registry holds the kinds; built-ins are registered in one explicit place.
type Registry struct{ kinds map[string]Kind }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]Kind{}} }

// Register adds a kind; it panics on a duplicate name (a programming error).
func (r *Registry) Register(k Kind) {
	if _, dup := r.kinds[k.Name()]; dup {
		panic("action: kind registered twice: " + k.Name())
	}
	r.kinds[k.Name()] = k
}

// Get returns the kind by name.
func (r *Registry) Get(name string) (Kind, error) {
	k, ok := r.kinds[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownKind, name, r.Names())
	}
	return k, nil
}

// Names lists registered kinds.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// PlanHash identifies exactly what is approved: the kind, target, parameters
// and the plan's content. Approvals carry it; a different hash voids them.
func PlanHash(a *Action, p Plan) string {
	canon := struct {
		Kind    string          `json:"kind"`
		Service string          `json:"service"`
		Target  string          `json:"target"`
		Params  json.RawMessage `json:"params"`
		Plan    Plan            `json:"plan"`
	}{a.Kind, a.Service, a.Target, a.Params, p}
	b, _ := json.Marshal(canon) // maps marshal with sorted keys
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
