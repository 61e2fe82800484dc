package access

import (
	"context"
	"errors"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// Grant is a grant as shown to people: who, what, why, approved by whom,
// until when, and how it was revoked. History is kept forever.
type Grant struct {
	ID             int64       `json:"id"`
	ActionID       int64       `json:"action_id,omitempty"`
	Service        string      `json:"service"`
	Database       string      `json:"database"`
	Profile        string      `json:"profile"`
	Engine         string      `json:"engine"`
	Requester      string      `json:"requester"`
	Reason         string      `json:"reason"`
	Role           string      `json:"role"`
	State          string      `json:"state"`
	BreakGlass     bool        `json:"break_glass"`
	Approvers      []string    `json:"approvers"`
	CreatedAt      time.Time   `json:"created_at"`
	IssuedAt       *time.Time  `json:"issued_at,omitempty"`
	ExpiresAt      time.Time   `json:"expires_at"`
	RevokeAfter    *time.Time  `json:"revoke_after,omitempty"`
	RevokedAt      *time.Time  `json:"revoked_at,omitempty"`
	Attempts       int         `json:"revoke_attempts,omitempty"`
	NextAttemptAt  *time.Time  `json:"next_attempt_at,omitempty"`
	LastError      string      `json:"last_error,omitempty"`
	CredentialHash string      `json:"credential_hash,omitempty"`
	Revocation     *Revocation `json:"revocation,omitempty"`
}

// Live reports whether the grant's role may still exist.
func (g Grant) Live() bool {
	return g.State == StateIssuing || g.State == StateActive || g.State == StateRevoking
}

// ListFilter selects grants.
type ListFilter struct {
	// Active keeps grants whose role may still exist (issuing, active,
	// revoking).
	Active  bool
	Service string
	Limit   int
}

// List returns grants newest first, with their approvers.
func List(ctx context.Context, d *Deps, f ListFilter) ([]Grant, error) {
	sf := store.GrantFilter{Service: f.Service, Limit: f.Limit}
	if f.Active {
		sf.States = []string{StateIssuing, StateActive, StateRevoking}
	}
	rows, err := d.Store.ListGrants(ctx, sf)
	if err != nil {
		return nil, err
	}
	out := make([]Grant, 0, len(rows))
	for _, r := range rows {
		g, err := view(ctx, d, r)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// Get returns one grant with its revocation record.
func Get(ctx context.Context, d *Deps, id int64) (Grant, error) {
	r, err := d.Store.GetGrant(ctx, id)
	if err != nil {
		return Grant{}, err
	}
	return view(ctx, d, r)
}

func view(ctx context.Context, d *Deps, r store.GrantRow) (Grant, error) {
	g := Grant{ID: r.ID, ActionID: r.ActionID, Service: r.Service, Database: r.Database, Profile: r.Profile, Engine: r.Engine,
		Requester: r.Requester, Reason: r.Reason, Role: r.RoleName, State: r.State, BreakGlass: r.BreakGlass, Approvers: []string{},
		CreatedAt: r.CreatedAt, IssuedAt: r.IssuedAt, ExpiresAt: r.ExpiresAt, RevokeAfter: r.RevokeAfter, RevokedAt: r.RevokedAt,
		Attempts: r.RevokeAttempts, NextAttemptAt: r.NextAttemptAt, LastError: r.LastError, CredentialHash: r.CredentialHash}
	if rec := ParseRevocation(r.Revocation); rec.RequestedAt != (time.Time{}) || len(rec.Steps) > 0 {
		g.Revocation = &rec
	}
	if r.ActionID == 0 {
		return g, nil
	}
	a, err := d.Store.GetAction(ctx, r.ActionID)
	if errors.Is(err, store.ErrNotFound) {
		return g, nil
	}
	if err != nil {
		return g, err
	}
	votes, err := d.Store.ListApprovals(ctx, r.ActionID)
	if err != nil {
		return g, err
	}
	// Only approvals of the plan that was executed count.
	for _, v := range votes {
		if v.Decision == "approve" && v.PlanHash == a.PlanHash {
			g.Approvers = append(g.Approvers, v.User)
		}
	}
	return g, nil
}
