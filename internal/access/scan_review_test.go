package access_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/store"
)

func TestReviewReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newScanBundle(t)
	st := b.store
	day := func(m time.Month, d, h int) time.Time { return time.Date(2026, m, d, h, 0, 0, 0, time.UTC) }
	act, err := st.InsertAction(ctx, store.ActionRow{Kind: "access.grant", Service: "shop", Target: "main/read-only", Params: "{}", Requester: "alice",
		Reason: "INC-42", State: "succeeded", PlanDetails: "{}", Requirement: "{}", Result: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct{ user, decision string }{{"bob", "approve"}, {"mallory", "reject"}, {"carol", "approve"}} {
		if _, err := st.InsertApproval(ctx, store.ApprovalRow{ActionID: act.ID, User: v.user, Decision: v.decision, PlanHash: "h", Via: "cli"}); err != nil {
			t.Fatal(err)
		}
	}
	revocation := `{"steps":[{"step":"block_login","at":"2026-01-10T10:00:01Z"},{"step":"terminate_sessions","at":"2026-01-10T10:00:02Z","terminated":1},` +
		`{"step":"prove_login_fails","at":"2026-01-10T10:00:04Z","error":"password authentication failed"}]}`
	plant := func(action any, role, state string, breakGlass int, created time.Time, revoked any, rev string) {
		t.Helper()
		_, err := st.DB().Exec(`INSERT INTO grants (action_id, service, database, profile, engine, requester, reason, role_name, state, break_glass,
created_at, issued_at, expires_at, revoked_at, revocation) VALUES (?, 'shop', 'main', 'read-only', 'postgres', 'alice', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			action, "INC-42 | prod", role, state, breakGlass, store.FormatTime(created), store.FormatTime(created), store.FormatTime(created.Add(time.Hour)), revoked, rev)
		if err != nil {
			t.Fatal(err)
		}
	}
	plant(act.ID, "stw_alice_1", access.StateRevoked, 0, day(1, 10, 9), store.FormatTime(day(1, 10, 10)), revocation)
	plant(nil, "stw_dave_2", access.StateActive, 1, day(3, 30, 23), nil, "{}")
	plant(nil, "stw_old_0", access.StateRevoked, 0, day(1, 1, 0).AddDate(0, -2, 0), store.FormatTime(day(1, 1, 0).AddDate(0, -2, 1)), "{}")

	scan := func(at time.Time, status string, findings []access.Finding, errMsg string) {
		t.Helper()
		r := access.ScanReport{Service: "shop", Database: "main", Engine: "postgres", Status: status, Findings: findings, Error: errMsg,
			Principals: make([]access.Principal, 3)}
		js, _ := json.Marshal(r)
		if _, err := st.InsertAccessScan(ctx, store.AccessScanRow{Service: "shop", Database: "main", Status: status, Findings: len(findings),
			Report: string(js), Error: errMsg, Actor: access.ScanActor, StartedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	super := access.Finding{Principal: "legacy_admin", Severity: access.SeverityCritical, Reasons: []string{"SUPERUSER: bypasses every privilege check"}}
	upd := access.Finding{Principal: "etl", Severity: access.SeverityHigh, Reasons: []string{"UPDATE on table public.orders"}}
	scan(day(2, 1, 0), access.ScanFindings, []access.Finding{super, upd}, "")
	scan(day(2, 1, 6), access.ScanError, nil, "connect to postgres database: refused")
	scan(day(3, 1, 0), access.ScanFindings, []access.Finding{upd}, "")
	scan(day(4, 2, 0), access.ScanOK, nil, "") // after the period

	rep, err := access.ReviewReport(ctx, st, day(1, 1, 0), day(4, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Grants != 2 || s.BreakGlass != 1 || s.Revoked != 1 || s.NotRevoked != 1 || s.Scans != 3 || s.ScansWithFindings != 2 || s.ScanErrors != 1 || s.OpenFindings != 1 {
		t.Fatalf("summary = %+v", s)
	}
	g := rep.Grants[0]
	if g.Role != "stw_alice_1" || strings.Join(g.Approvers, ",") != "bob,carol" || strings.Join(g.Rejecters, ",") != "mallory" || len(g.Revocation) == 0 {
		t.Fatalf("grant = %+v", g)
	}
	if len(rep.Open) != 1 || rep.Open[0].Principal != "etl" {
		t.Fatalf("open = %+v", rep.Open)
	}
	var md strings.Builder
	rep.GeneratedAt = day(4, 1, 8)
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	text := md.String()
	for _, want := range []string{
		"# Access review 2026-01-01 to 2026-03-31",
		"- Grants requested or live: 2 (break-glass: 1)",
		"| 1 | shop/main | read-only | stw_alice_1 | alice | INC-42 \\| prod | bob, carol | 2026-01-10 09:00:00Z | 2026-01-10 09:00:00Z | 2026-01-10 10:00:00Z | 2026-01-10 10:00:00Z | revoked |",
		"| stw_dave_2 | alice | INC-42 \\| prod | **break-glass** |",
		"### Revocation of grant 1 (stw_alice_1)",
		"- terminate_sessions at 2026-01-10T10:00:02Z (terminated=1)",
		"- prove_login_fails at 2026-01-10T10:00:04Z (error=password authentication failed)",
		"- **CRITICAL** `legacy_admin`: SUPERUSER: bypasses every privilege check",
		"Could not run: connect to postgres database: refused",
		"| shop/main | etl | high |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	for _, not := range []string{"stw_old_0", "2026-04-02"} {
		if strings.Contains(text, not) {
			t.Errorf("markdown has %q from outside the period", not)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
	if _, err := access.ReviewReport(ctx, st, day(4, 1, 0), day(1, 1, 0)); err == nil {
		t.Fatal("reversed period accepted")
	}
}
