package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestAccessGrantsLifecycleAndClaims(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		act, err := s.InsertAction(ctx, store.ActionRow{Kind: "access.grant", Params: "{}", Requester: "alice", Reason: "INC-1", State: "executing",
			PlanDetails: "{}", Requirement: "{}", Result: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		g, err := s.InsertGrant(ctx, store.GrantRow{ActionID: act.ID, Service: "shop", Database: "main", Profile: "read-only", Engine: "postgres",
			Requester: "alice", Reason: "INC-1", RoleName: "pending_1", State: "issuing", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
		if err != nil || g.ID == 0 {
			t.Fatalf("insert: %+v %v", g, err)
		}
		if _, err := s.InsertGrant(ctx, store.GrantRow{Service: "shop", Database: "main", Profile: "p", Engine: "postgres", Requester: "bob",
			Reason: "r", RoleName: "pending_1", State: "issuing", ExpiresAt: t0}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate role name: %v", err)
		}
		issued := t0.Add(time.Second)
		g.RoleName, g.State, g.IssuedAt, g.CredentialHash, g.ExpiresAt = "stw_alice_1_ab", "active", &issued, "sha256:x", issued.Add(time.Hour)
		if err := s.UpdateGrant(ctx, g, "issuing"); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateGrant(ctx, g, "issuing"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale update: %v", err)
		}
		got, err := s.GetGrant(ctx, g.ID)
		if err != nil || got.State != "active" || got.RoleName != "stw_alice_1_ab" || got.IssuedAt == nil || !got.IssuedAt.Equal(issued) ||
			got.ActionID != act.ID || got.Revocation != "{}" || got.NextAttemptAt != nil {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := s.GetGrant(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}

		// Expired and due selections.
		at := issued.Add(2 * time.Hour)
		exp, err := s.ListGrants(ctx, store.GrantFilter{States: []string{"active"}, ExpiresBy: &at})
		if err != nil || len(exp) != 1 {
			t.Fatalf("expired: %d %v", len(exp), err)
		}
		early := issued.Add(time.Minute)
		if exp, _ := s.ListGrants(ctx, store.GrantFilter{States: []string{"active"}, ExpiresBy: &early}); len(exp) != 0 {
			t.Fatalf("not yet expired listed: %d", len(exp))
		}
		g.State = "revoking"
		g.RevokeAfter = &g.ExpiresAt
		if err := s.UpdateGrant(ctx, g, "active"); err != nil {
			t.Fatal(err)
		}
		// Two claimers at the same moment: one wins; the lease holds off
		// others until it runs out.
		ok1, err1 := s.ClaimGrant(ctx, g.ID, "revoking", at, at.Add(time.Minute))
		ok2, err2 := s.ClaimGrant(ctx, g.ID, "revoking", at, at.Add(time.Minute))
		if err1 != nil || err2 != nil || !ok1 || ok2 {
			t.Fatalf("claims: %v %v %v %v", ok1, err1, ok2, err2)
		}
		if due, _ := s.ListGrants(ctx, store.GrantFilter{States: []string{"revoking"}, DueBy: &at}); len(due) != 0 {
			t.Fatalf("claimed grant listed as due: %d", len(due))
		}
		later := at.Add(2 * time.Minute)
		if ok, err := s.ClaimGrant(ctx, g.ID, "revoking", later, later.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("claim after the lease: %v %v", ok, err)
		}
		if list, err := s.ListGrants(ctx, store.GrantFilter{ActionID: act.ID, Service: "shop"}); err != nil || len(list) != 1 {
			t.Fatalf("by action: %d %v", len(list), err)
		}
	})
}
