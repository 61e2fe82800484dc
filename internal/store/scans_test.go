package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// insertGrantRow plants a row in the grants table the way the grants code
// writes it; the scan code only reads the table.
func insertGrantRow(t *testing.T, s *store.Store, actionID any, service, database, role, state string, created time.Time, revoked *time.Time) {
	t.Helper()
	cols := []string{"action_id", "service", "database", "profile", "engine", "requester", "reason", "role_name", "state", "created_at", "issued_at", "expires_at", "revoked_at", "revocation"}
	var rev any
	revocation := "{}"
	if revoked != nil {
		rev = store.FormatTime(*revoked)
		revocation = `{"steps":[{"step":"block_login","at":"` + store.FormatTime(*revoked) + `","ok":true}]}`
	}
	vals := []any{actionID, service, database, "read-only", "postgres", "alice", "INC-1", role, state, store.FormatTime(created), store.FormatTime(created),
		store.FormatTime(created.Add(time.Hour)), rev, revocation}
	ph := make([]string, len(cols))
	for i := range ph {
		ph[i] = "?"
		if s.Dialect() == store.Postgres {
			ph[i] = fmt.Sprintf("$%d", i+1)
		}
	}
	if _, err := s.DB().Exec("INSERT INTO grants ("+strings.Join(cols, ", ")+") VALUES ("+strings.Join(ph, ", ")+")", vals...); err != nil {
		t.Fatalf("plant grant %s: %v", role, err)
	}
}

func TestAccessScans(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		base := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
		for i, st := range []string{"ok", "findings", "error", "findings"} {
			r, err := s.InsertAccessScan(ctx, store.AccessScanRow{Service: "shop", Database: "main", Status: st, Findings: i, Actor: "alice",
				StartedAt: base.Add(time.Duration(i) * time.Hour)})
			if err != nil || r.ID == 0 || r.Report != "{}" {
				t.Fatalf("insert = %+v, %v", r, err)
			}
		}
		other, err := s.InsertAccessScan(ctx, store.AccessScanRow{Service: "shop", Database: "other", Status: "ok", Report: `{"x":1}`, Actor: "bob", StartedAt: base})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAccessScan(ctx, other.ID)
		if err != nil || got.Report != `{"x":1}` || got.Actor != "bob" || !got.StartedAt.Equal(base) {
			t.Fatalf("get = %+v, %v", got, err)
		}
		last, err := s.ListAccessScans(ctx, store.AccessScanFilter{Service: "shop", Database: "main", NotStatuses: []string{"error"}, Limit: 1})
		if err != nil || len(last) != 1 || last[0].Findings != 3 {
			t.Fatalf("last = %+v, %v", last, err)
		}
		period, err := s.ListAccessScans(ctx, store.AccessScanFilter{From: base.Add(time.Hour), To: base.Add(3 * time.Hour), Oldest: true})
		if err != nil || len(period) != 2 || period[0].Status != "findings" || period[1].Status != "error" {
			t.Fatalf("period = %+v, %v", period, err)
		}
		found, err := s.ListAccessScans(ctx, store.AccessScanFilter{Statuses: []string{"findings"}})
		if err != nil || len(found) != 2 {
			t.Fatalf("findings = %+v, %v", found, err)
		}
	})
}

func TestLiveGrantRolesAndReviewGrants(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		a, err := s.InsertAction(ctx, store.ActionRow{Kind: "access.grant", Service: "shop", Target: "main/read-only", Params: "{}", Requester: "alice",
			State: "executed", PlanDetails: "{}", Requirement: "{}", Result: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"bob", "carol"} {
			if _, err := s.InsertApproval(ctx, store.ApprovalRow{ActionID: a.ID, User: u, Decision: "approve", PlanHash: "h", Via: "cli"}); err != nil {
				t.Fatal(err)
			}
		}
		jan := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
		revoked := jan.Add(time.Hour)
		insertGrantRow(t, s, a.ID, "shop", "main", "steward_g1", "revoked", jan, &revoked)
		insertGrantRow(t, s, nil, "shop", "main", "steward_g2", "active", jan.AddDate(0, 2, 0), nil)
		insertGrantRow(t, s, nil, "shop", "main", "steward_g3", "revoking", jan.AddDate(0, 2, 0), nil)
		insertGrantRow(t, s, nil, "shop", "other", "steward_g4", "active", jan.AddDate(0, 2, 0), nil)
		old := jan.AddDate(-1, 0, 0)
		oldRevoked := old.Add(time.Hour)
		insertGrantRow(t, s, nil, "shop", "main", "steward_g0", "revoked", old, &oldRevoked)

		live, err := s.LiveGrantRoles(ctx, "shop", "main")
		if err != nil || !slices.Equal(live, []string{"steward_g2", "steward_g3"}) {
			t.Fatalf("live = %v, %v", live, err)
		}
		q1, err := s.AccessReviewGrants(ctx, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
		if err != nil || len(q1) != 4 {
			t.Fatalf("review grants = %+v, %v", q1, err)
		}
		g := q1[0]
		if g.RoleName != "steward_g1" || g.ActionID == nil || *g.ActionID != a.ID || len(g.Approvals) != 2 || g.Approvals[1].User != "carol" ||
			g.RevokedAt == nil || !g.RevokedAt.Equal(revoked) || g.IssuedAt == nil || !strings.Contains(g.Revocation, "block_login") {
			t.Fatalf("first grant = %+v", g)
		}
		// Only January: the March grants were requested after it ended.
		jan1, err := s.AccessReviewGrants(ctx, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
		if err != nil || len(jan1) != 1 || jan1[0].RoleName != "steward_g1" {
			t.Fatalf("january grants = %+v, %v", jan1, err)
		}
	})
}
