package readiness_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

const hour = time.Hour
const day = 24 * time.Hour

func TestBackups(t *testing.T) {
	t.Parallel()
	t.Run("pass", func(t *testing.T) {
		b := setup(t, "")
		run := b.backup("nightly", store.BackupSucceeded, b.now.Add(-3*hour))
		r := b.result(readiness.CtlBackups)
		want(t, r, readiness.Pass, "3h old", "RPO 24h")
		if len(r.Evidence) != 1 || r.Evidence[0].ID != fmt.Sprint(run.ID) || r.Evidence[0].AuditSeq == 0 || r.Evidence[0].AuditHash == "" {
			t.Fatalf("evidence = %+v, want the run with its audit event", r.Evidence)
		}
	})
	t.Run("stale", func(t *testing.T) {
		b := setup(t, "")
		b.backup("nightly", store.BackupSucceeded, b.now.Add(-30*hour))
		want(t, b.result(readiness.CtlBackups), readiness.Fail, "30h old", "older than the RPO 24h")
	})
	t.Run("latest run failed", func(t *testing.T) {
		b := setup(t, "")
		b.backup("nightly", store.BackupSucceeded, b.now.Add(-5*hour))
		b.backup("nightly", store.BackupFailed, b.now.Add(-1*hour))
		want(t, b.result(readiness.CtlBackups), readiness.Warn, "latest run of nightly failed")
	})
	t.Run("never", func(t *testing.T) {
		b := setup(t, "")
		b.backup("nightly", store.BackupFailed, b.now.Add(-1*hour))
		want(t, b.result(readiness.CtlBackups), readiness.Fail, "never succeeded: nightly")
	})
	t.Run("tier threshold", func(t *testing.T) {
		b := setup(t, "readiness:\n  tiers:\n    \"1\": {backup_max_age: 2h}\n")
		b.backup("nightly", store.BackupSucceeded, b.now.Add(-3*hour))
		want(t, b.result(readiness.CtlBackups), readiness.Fail, "backup_max_age 2h")
	})
	t.Run("unknown", func(t *testing.T) {
		b := setup(t, "")
		want(t, b.results("other")[readiness.CtlBackups], readiness.Unknown, "no backups configured")
		b.cfg.Services[0].Objectives.RPO = ""
		want(t, b.result(readiness.CtlBackups), readiness.Unknown, "no RPO objective")
		b.cfg.Services[0].Objectives.RPO = "24h"
		b.cfg.Services[0].Backups[0].Method = "pgbackrest"
		want(t, b.result(readiness.CtlBackups), readiness.Unknown, "taken by another tool, whose runs Steward does not record: nightly (pgbackrest)")
	})
}

func TestRestoreDrill(t *testing.T) {
	t.Parallel()
	t.Run("pass", func(t *testing.T) {
		b := setup(t, "")
		for i, rto := range []float64{300, 310, 305} {
			b.drill("alice", store.DrillPassed, b.now.Add(-time.Duration(20-5*i)*day), rto, 3600)
		}
		r := b.result(readiness.CtlRestoreDrill)
		want(t, r, readiness.Pass, "drill passed 10d ago (max 30d)", "RTO 5m of 15m", "RPO 1h of 24h", "RTO trend over 3 drills")
		if r.Evidence[0].AuditSeq == 0 || r.Evidence[0].Link == "" {
			t.Fatalf("evidence = %+v", r.Evidence)
		}
	})
	t.Run("too old for tier 1", func(t *testing.T) {
		b := setup(t, "")
		b.drill("alice", store.DrillPassed, b.now.Add(-40*day), 300, 60)
		want(t, b.result(readiness.CtlRestoreDrill), readiness.Fail, "last passed drill 40d ago, older than 30d")
		b.cfg.Services[0].Tier = 2 // 90 days for the other tiers
		want(t, b.result(readiness.CtlRestoreDrill), readiness.Pass, "max 90d")
	})
	t.Run("objective missed", func(t *testing.T) {
		b := setup(t, "")
		b.drill("alice", store.DrillPassed, b.now.Add(-day), 1200, 60)
		b.cfg.Services[0].Objectives.RTO = "10m"
		want(t, b.result(readiness.CtlRestoreDrill), readiness.Fail, "measured RTO 20m exceeds the objective 10m")
	})
	t.Run("trend", func(t *testing.T) {
		b := setup(t, "")
		// 6, 8, 10, 12 minutes at 20, 15, 10, 5 days ago: +24s/day, 17.6m
		// projected in 30 days, over the 15m objective.
		for i, rto := range []float64{360, 480, 600, 720} {
			b.drill("alice", store.DrillPassed, b.now.Add(-time.Duration(20-5*i)*day), rto, 60)
		}
		want(t, b.result(readiness.CtlRestoreDrill), readiness.Fail, "RTO trend over 4 drills +24s/day", "over the objective 15m")
	})
	t.Run("no passed drill", func(t *testing.T) {
		b := setup(t, "")
		run := b.drill("alice", store.DrillFailed, b.now.Add(-day), 60, 60)
		r := b.result(readiness.CtlRestoreDrill)
		want(t, r, readiness.Fail, "no passed drill (1 run recorded)")
		if len(r.Evidence) != 1 || r.Evidence[0].ID != fmt.Sprint(run.ID) {
			t.Fatalf("evidence = %+v", r.Evidence)
		}
	})
	t.Run("no drill configured", func(t *testing.T) {
		b := setup(t, "")
		b.cfg.Services[0].Drills = nil
		want(t, b.result(readiness.CtlRestoreDrill), readiness.Fail, "1 backup configured but no restore drill")
		want(t, b.results("other")[readiness.CtlRestoreDrill], readiness.Unknown)
	})
}

func TestDrillRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.drill("alice", store.DrillPassed, b.now.Add(-10*day), 60, 60)
	b.drill("system:scheduler", store.DrillPassed, b.now.Add(-5*day), 60, 60)
	b.drill("bob", store.DrillPassed, b.now.Add(-200*day), 60, 60) // outside 180d
	want(t, b.result(readiness.CtlDrillRotation), readiness.Fail, "only 1 person ran drills in 180d (alice), want 2")
	b.drill("bob", store.DrillFailed, b.now.Add(-2*day), 60, 60)
	r := b.result(readiness.CtlDrillRotation)
	want(t, r, readiness.Pass, "2 people ran drills in 180d (alice, bob)")
	if len(r.Evidence) != 2 {
		t.Fatalf("evidence = %+v, want one drill per person", r.Evidence)
	}
	want(t, b.results("other")[readiness.CtlDrillRotation], readiness.Unknown, "no restore drills configured")
}

func (b *bundle) checkRun(check, status string, at time.Time) store.CheckRunRow {
	b.t.Helper()
	r, err := b.st.InsertCheckRun(b.ctx, store.CheckRunRow{Service: "shop", Check: check, Database: "main", Status: status, Actor: "system:checks", StartedAt: at, Sample: "[]"})
	if err != nil {
		b.t.Fatal(err)
	}
	b.audit("check.run", "shop/"+check, status, map[string]any{"run_id": r.ID})
	return r
}

func TestIntegrity(t *testing.T) {
	t.Parallel()
	t.Run("pass", func(t *testing.T) {
		b := setup(t, "")
		b.checkRun("amounts", "fail", b.now.Add(-20*hour))
		b.checkRun("amounts", "pass", b.now.Add(-2*hour))
		b.checkRun("emails", "pass", b.now.Add(-3*hour))
		r := b.result(readiness.CtlIntegrity)
		want(t, r, readiness.Pass, "2 checks on 1 database, all passing")
		if len(r.Evidence) != 2 || r.Evidence[0].AuditSeq == 0 {
			t.Fatalf("evidence = %+v", r.Evidence)
		}
	})
	t.Run("failing within and beyond grace", func(t *testing.T) {
		b := setup(t, "")
		b.checkRun("amounts", "pass", b.now.Add(-20*hour))
		b.checkRun("amounts", "fail", b.now.Add(-10*hour))
		b.checkRun("amounts", "fail", b.now.Add(-1*hour))
		b.checkRun("emails", "warn", b.now.Add(-3*day))
		b.checkRun("emails", "warn", b.now.Add(-1*hour))
		// fail severity: failing 10h of 24h; warn severity: 3d of 7d.
		want(t, b.result(readiness.CtlIntegrity), readiness.Warn, "amounts fail for 10h", "emails warn for 3d")
		b.now = b.now.Add(20 * hour)
		b.checkRun("amounts", "fail", b.now.Add(-hour))
		b.checkRun("emails", "warn", b.now.Add(-hour))
		want(t, b.result(readiness.CtlIntegrity), readiness.Fail, "failing too long: amounts fail for 30h (allowed 24h)")
	})
	t.Run("stale and never", func(t *testing.T) {
		b := setup(t, "")
		b.checkRun("amounts", "pass", b.now.Add(-30*hour))
		want(t, b.result(readiness.CtlIntegrity), readiness.Fail, "never ran: emails", "not run within 24h: amounts (30h ago)")
	})
	t.Run("database without checks", func(t *testing.T) {
		b := setup(t, "")
		b.cfg.Services[0].Checks = nil
		want(t, b.result(readiness.CtlIntegrity), readiness.Fail, "1 database without checks: main")
		want(t, b.results("other")[readiness.CtlIntegrity], readiness.Unknown, "no databases configured")
	})
}

// change records an executed data change with its votes.
func (b *bundle) change(kind string, breakGlass bool, approvers ...string) store.ActionRow {
	b.t.Helper()
	at := b.now.Add(-2 * day)
	a, err := b.st.InsertAction(b.ctx, store.ActionRow{Kind: kind, Service: "shop", Target: "main", Params: "{}", Requester: "erin", Reason: "INC-1",
		State: "succeeded", Risk: "low", PlanSummary: "UPDATE 3 rows", PlanDetails: "{}", PlanHash: "h1", Rule: "data-changes", Requirement: "{}",
		BreakGlass: breakGlass, Result: "{}", CreatedAt: at, ExecutedAt: &at})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, u := range approvers {
		if _, err := b.st.InsertApproval(b.ctx, store.ApprovalRow{ActionID: a.ID, User: u, Decision: "approve", PlanHash: "h1", Roles: []string{"approver"}, Via: "cli"}); err != nil {
			b.t.Fatal(err)
		}
	}
	b.audit("action.execute", fmt.Sprintf("action:%d", a.ID), "ok", map[string]any{"kind": kind})
	return a
}

func TestDataChanges(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.change("fix.apply", false, "bob")
	b.change("sql.exec", false, "carol")
	r := b.result(readiness.CtlDataChanges)
	want(t, r, readiness.Pass, "2 data changes in 30d: 1 fix, 0 undos, 1 guarded SQL; 0 break-glass", "every change approved")
	if len(r.Evidence) != 2 || r.Evidence[0].AuditSeq == 0 || r.Evidence[0].Link == "" {
		t.Fatalf("evidence = %+v", r.Evidence)
	}
	b.change("sql.exec", true)
	want(t, b.result(readiness.CtlDataChanges), readiness.Warn, "2 guarded SQL; 1 break-glass")
	// A vote for another plan does not count.
	a := b.change("fix.apply", false)
	if _, err := b.st.InsertApproval(b.ctx, store.ApprovalRow{ActionID: a.ID, User: "bob", Decision: "approve", PlanHash: "old", Via: "cli"}); err != nil {
		t.Fatal(err)
	}
	want(t, b.result(readiness.CtlDataChanges), readiness.Fail, fmt.Sprintf("without approval: #%d (rule data-changes)", a.ID))
	want(t, b.results("other")[readiness.CtlDataChanges], readiness.Unknown)
}

func TestDataChangesWriteGrants(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	issued := b.now.Add(-day)
	if _, err := b.st.InsertGrant(b.ctx, store.GrantRow{Service: "shop", Database: "main", Profile: "write", Engine: "postgres", Requester: "erin", Reason: "INC-2",
		RoleName: "steward_g1", State: "revoked", IssuedAt: &issued, ExpiresAt: issued.Add(hour), RevokedAt: &issued}); err != nil {
		t.Fatal(err)
	}
	want(t, b.result(readiness.CtlDataChanges), readiness.Warn, "1 grant with write privileges")
}

func (b *bundle) scan(db, status string, findings int, at time.Time) {
	b.t.Helper()
	r, err := b.st.InsertAccessScan(b.ctx, store.AccessScanRow{Service: "shop", Database: db, Status: status, Findings: findings, Actor: "system:access", StartedAt: at, Error: map[bool]string{true: "connection refused"}[status == "error"]})
	if err != nil {
		b.t.Fatal(err)
	}
	b.audit("access.scan", "shop/"+db, status, map[string]any{"scan_id": r.ID})
}

func TestStandingPrivilege(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	want(t, b.result(readiness.CtlStandingPrivilege), readiness.Fail, "never scanned: main")
	b.scan("main", "ok", 0, b.now.Add(-2*day))
	r := b.result(readiness.CtlStandingPrivilege)
	want(t, r, readiness.Pass, "1 database scanned within 7d, 0 findings")
	if r.Evidence[0].AuditSeq == 0 {
		t.Fatalf("evidence = %+v", r.Evidence)
	}
	b.scan("main", "error", 0, b.now.Add(-day))
	want(t, b.result(readiness.CtlStandingPrivilege), readiness.Warn, "latest scan failed: connection refused")
	b.scan("main", "findings", 2, b.now.Add(-hour))
	want(t, b.result(readiness.CtlStandingPrivilege), readiness.Fail, "2 principals outside the allow-list (main: 2)")
	b.now = b.now.Add(8 * day)
	want(t, b.result(readiness.CtlStandingPrivilege), readiness.Fail, "latest scan older than 7d")
}

func (b *bundle) grant(state string, expires time.Time, revoked *time.Time, proof bool) store.GrantRow {
	b.t.Helper()
	issued := expires.Add(-hour)
	g := store.GrantRow{Service: "shop", Database: "main", Profile: "read-only", Engine: "postgres", Requester: "erin", Reason: "INC-3",
		RoleName: fmt.Sprintf("steward_%d", expires.UnixNano()), State: state, IssuedAt: &issued, ExpiresAt: expires, RevokedAt: revoked, CreatedAt: issued}
	if proof {
		g.Revocation = `{"steps":[{"step":"drop_role","ok":true},{"step":"login_refused","ok":true}]}`
	}
	g, err := b.st.InsertGrant(b.ctx, g)
	if err != nil {
		b.t.Fatal(err)
	}
	if proof {
		b.audit("access.revoke", fmt.Sprintf("grant:%d", g.ID), "ok", map[string]any{"latency_ms": 900})
	}
	return g
}

func TestGrants(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	exp := b.now.Add(-2 * day)
	rev := exp.Add(3 * time.Second)
	b.grant("revoked", exp, &rev, true)
	b.grant("active", b.now.Add(hour), nil, false)
	r := b.result(readiness.CtlGrants)
	want(t, r, readiness.Pass, "2 grants: 1 revoked, 1 live within expiry", "every revocation proven", "median revocation 3.0s after expiry")
	if r.Evidence[1].AuditSeq == 0 {
		t.Fatalf("evidence = %+v, want the revocation's audit event", r.Evidence)
	}
	unproven := b.grant("revoked", exp.Add(hour), &rev, false)
	want(t, b.result(readiness.CtlGrants), readiness.Fail, fmt.Sprintf("revoked without proof: #%d", unproven.ID))
	b2 := setup(t, "")
	late := b2.grant("active", b2.now.Add(-hour), nil, false)
	want(t, b2.result(readiness.CtlGrants), readiness.Fail, fmt.Sprintf("outstanding past expiry: #%d (active, 1h past expiry)", late.ID))
	want(t, b2.results("other")[readiness.CtlGrants], readiness.Unknown, "no access profiles configured")
}

func (b *bundle) breakGlass(created, deadline time.Time, completed *time.Time) store.ReviewRow {
	b.t.Helper()
	a := b.change("sql.exec", true)
	r, err := b.st.InsertReview(b.ctx, store.ReviewRow{ActionID: a.ID, Breaker: "frank", Required: 2, State: "open", Deadline: deadline, CreatedAt: created})
	if err != nil {
		b.t.Fatal(err)
	}
	if completed != nil {
		for _, u := range []string{"bob", "carol"} {
			if err := b.st.AddSignoff(b.ctx, r.ID, store.Signoff{User: u, Notes: "checked", CreatedAt: *completed}); err != nil {
				b.t.Fatal(err)
			}
		}
		if err := b.st.SetReviewState(b.ctx, r.ID, "completed", completed, nil); err != nil {
			b.t.Fatal(err)
		}
		b.audit("review.complete", fmt.Sprintf("review:%d", r.ID), "ok", map[string]any{"action": a.ID})
	}
	return r
}

func TestBreakGlass(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	want(t, b.result(readiness.CtlBreakGlass), readiness.Pass, "no break-glass use in 30d")
	c := b.now.Add(-3 * day)
	done := c.Add(5 * hour)
	b.breakGlass(c, c.Add(24*hour), &done)
	r := b.result(readiness.CtlBreakGlass)
	want(t, r, readiness.Pass, "1 break-glass use in 30d, every one reviewed within its deadline")
	if len(r.Evidence) != 1 || r.Evidence[0].AuditSeq == 0 || !strings.Contains(r.Evidence[0].Summary, "reviewed by bob, carol within 5h") {
		t.Fatalf("evidence = %+v", r.Evidence)
	}
	open := b.breakGlass(b.now.Add(-hour), b.now.Add(23*hour), nil)
	want(t, b.result(readiness.CtlBreakGlass), readiness.Pass, fmt.Sprintf("open: review %d due in 23h", open.ID))
	b.now = b.now.Add(2 * day)
	want(t, b.result(readiness.CtlBreakGlass), readiness.Fail, fmt.Sprintf("review %d (25h overdue, 0 of 2 signoffs)", open.ID))
	b2 := setup(t, "")
	lateDone := c.Add(30 * hour)
	late := b2.breakGlass(c, c.Add(24*hour), &lateDone)
	want(t, b2.result(readiness.CtlBreakGlass), readiness.Fail, fmt.Sprintf("review %d (6h late)", late.ID))
}

func TestEmergencyKit(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	want(t, b.result(readiness.CtlEmergencyKit), readiness.Fail, "1 kit credential configured but no kit was ever created")
	b.audit("kit.create", "kit:k1", "ok", map[string]any{"threshold": 3, "shares": 5})
	want(t, b.result(readiness.CtlEmergencyKit), readiness.Fail, "the current kit k1 was never opened in a drill")
	b.audit("kit.drill", "kit:k1", "ok", map[string]any{"share_files": 3})
	// A rehearsal of the refusal (too few shares) is not a failed drill.
	b.audit("kit.drill", "kit:k1", "failure", map[string]any{"share_files": 2, "error": "too few shares"})
	r := b.result(readiness.CtlEmergencyKit)
	want(t, r, readiness.Pass, "kit drilled")
	if len(r.Evidence) != 2 || r.Evidence[1].Kind != "kit-drill" || r.Evidence[1].AuditSeq == 0 {
		t.Fatalf("evidence = %+v", r.Evidence)
	}
	b.audit("kit.drill", "kit:k1", "failure", map[string]any{"share_files": 3, "error": "share 2 does not agree"})
	want(t, b.result(readiness.CtlEmergencyKit), readiness.Warn, "but a later drill")
	b.now = b.now.Add(181 * day)
	want(t, b.result(readiness.CtlEmergencyKit), readiness.Fail, "last kit drill 181d ago, older than 180d")
	// A new kit must be drilled itself.
	b.audit("kit.create", "kit:k2", "ok", map[string]any{"threshold": 3})
	want(t, b.result(readiness.CtlEmergencyKit), readiness.Fail, "the current kit k2 was never opened")
}

// sloSource answers fixed SLO summaries, as the probe SLO evaluator does.
type sloSource map[string][]readiness.SLOSummary

func (s sloSource) ServiceSLOs(_ context.Context, service string) ([]readiness.SLOSummary, error) {
	return s[service], nil
}

func (b *bundle) probeResult(location string, at time.Time) {
	b.t.Helper()
	if err := b.st.InsertProbeResults(b.ctx, []store.ProbeResultRow{{Service: "shop", Probe: "home", Location: location, Status: "up", StartedAt: at, Code: 200}}); err != nil {
		b.t.Fatal(err)
	}
}

func TestProbesSLO(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.probeResult("local", b.now.Add(-time.Minute))
	b.probeResult("eu", b.now.Add(-30*hour)) // too old to count
	want(t, b.result(readiness.CtlProbesSLO), readiness.Fail, "results from 1 of 2 configured locations within 24h (local)")
	b.probeResult("eu", b.now.Add(-time.Minute))
	want(t, b.result(readiness.CtlProbesSLO), readiness.Unknown, "SLO evaluation not available")
	b.eval.SLO = sloSource{"shop": {{Probe: "", Objective: 0.999, Window: "30d", Availability: 0.9995, BudgetRemaining: 0.5}}}
	r := b.result(readiness.CtlProbesSLO)
	want(t, r, readiness.Pass, "1 probe reporting from 2 locations (eu, local)", "99.950% of 99.900% over 30d, 50% budget left")
	if len(r.Evidence) != 3 {
		t.Fatalf("evidence = %+v, want 2 probe results and 1 SLO", r.Evidence)
	}
	b.eval.SLO = sloSource{"shop": {{Probe: "home", Objective: 0.999, Window: "30d", Availability: 0.998, BudgetRemaining: -1}}}
	want(t, b.result(readiness.CtlProbesSLO), readiness.Fail, "error budget exhausted: home")
	b.cfg.Services[0].SLO.Availability = ""
	want(t, b.result(readiness.CtlProbesSLO), readiness.Fail, "no SLO defined")
	b.cfg.Services[0].Probes[0].Locations = []string{"local"}
	want(t, b.result(readiness.CtlProbesSLO), readiness.Fail, "probes configured for 1 location (local), want 2")
	want(t, b.results("other")[readiness.CtlProbesSLO], readiness.Fail, "no probes configured")
}

func (b *bundle) delivered(channel, event string, at time.Time) {
	b.t.Helper()
	id, ok, err := b.st.EnqueueOutbox(b.ctx, store.OutboxRow{Channel: channel, Event: event, Severity: "info", Service: "shop", DedupKey: fmt.Sprintf("%s-%d", event, at.UnixNano()), Payload: "{}", CreatedAt: at, NextAttemptAt: at}, false)
	if err != nil || !ok {
		b.t.Fatalf("enqueue: %v %v", ok, err)
	}
	claim := at.Add(time.Minute)
	if ok, err := b.st.ClaimOutbox(b.ctx, id, at, claim); err != nil || !ok {
		b.t.Fatalf("claim: %v %v", ok, err)
	}
	if ok, err := b.st.MarkOutboxDelivered(b.ctx, id, claim, at); err != nil || !ok {
		b.t.Fatalf("deliver: %v %v", ok, err)
	}
}

func TestAlertChannels(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	want(t, b.result(readiness.CtlAlertChannels), readiness.Fail, "1 of 1 channel without a delivery in 7d: ops (never delivered)")
	b.delivered("pager", "notify.test", b.now.Add(-hour)) // routes only "other"
	b.delivered("ops", "check.failed", b.now.Add(-8*day))
	want(t, b.result(readiness.CtlAlertChannels), readiness.Fail, "ops (last delivery 8d ago)")
	b.audit("notify.test", "ops", "ok", nil)
	b.delivered("ops", "notify.test", b.now.Add(-hour))
	r := b.result(readiness.CtlAlertChannels)
	want(t, r, readiness.Pass, "1 channel (ops) delivered within 7d")
	if r.Evidence[0].AuditSeq == 0 {
		t.Fatalf("evidence = %+v, want the notify.test audit event", r.Evidence)
	}
	b.cfg.Notify.Channels = nil
	want(t, b.result(readiness.CtlAlertChannels), readiness.Fail, "no alert channels configured")
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	b.audit("user.add", "user:bob", "ok", nil)
	want(t, b.result(readiness.CtlAuditLog), readiness.Fail, "no signed checkpoint was ever published")
	signer, verifier, err := audit.LoadOrCreateKey(b.dir, "", "test/audit")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := b.alog.Checkpoint(b.ctx, signer, "test/audit")
	if err != nil {
		t.Fatal(err)
	}
	b.eval.Verifier = verifier
	r := b.result(readiness.CtlAuditLog)
	want(t, r, readiness.Pass, "audit log verifies (2 events); checkpoint of 2 events signed")
	if len(r.Evidence) != 2 || r.Evidence[1].AuditSeq != cp.Size || r.Evidence[1].AuditHash != cp.Hash {
		t.Fatalf("evidence = %+v, want the checkpoint's event %d %s", r.Evidence, cp.Size, cp.Hash)
	}
	b.now = b.now.Add(25 * hour)
	want(t, b.result(readiness.CtlAuditLog), readiness.Fail, "the newest checkpoint is 25h old (max 24h)")
	// Tampering: rewrite an event behind the chain's back.
	if _, err := b.st.DB().Exec("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"); err != nil {
		t.Fatal(err)
	}
	// The verification is reused for a minute (DefaultVerifyTTL), then
	// the log is read again.
	b.now = b.now.Add(2 * time.Minute)
	want(t, b.result(readiness.CtlAuditLog), readiness.Fail, "audit log does not verify at event 1")
}

func TestContacts(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	r := b.result(readiness.CtlContacts)
	want(t, r, readiness.Pass, "4 of 4 contacts")
	if len(r.Evidence) != 4 {
		t.Fatalf("evidence = %+v", r.Evidence)
	}
	b.cfg.Services[0].Contacts.ProviderSIRT.Email = ""
	b.cfg.Services[0].Contacts.ProviderSIRT.Name = ""
	b.cfg.Services[0].Contacts.ProviderNOC.Phone = ""
	want(t, b.result(readiness.CtlContacts), readiness.Warn, "2 of 4 contacts on file; missing provider_sirt; no phone, email or url for provider_noc")
	want(t, b.results("other")[readiness.CtlContacts], readiness.Fail, "0 of 4 contacts on file; missing oncall, escalation")
}

func TestApprovalPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t, "readiness:\n  policy_tests: [tests.yaml]\n")
	tests := `cases:
  - name: canary self-approval
    action: {kind: deploy.gate, service: shop, requester: bob}
    votes: [{user: bob, roles: [approver]}]
    expect: {rule: deploys, state: pending, ignored: [bob]}
`
	if err := os.WriteFile(filepath.Join(b.dir, "tests.yaml"), []byte(tests), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, b.result(readiness.CtlApprovalPolicy), readiness.Pass, "9 of 9 representative actions need approvers; policy tests 1 passed, 0 failed in 1 file")
	// A failing expectation fails the control.
	if err := os.WriteFile(filepath.Join(b.dir, "tests.yaml"), []byte(tests+"  - name: wrong\n    action: {kind: deploy.gate, service: shop, requester: bob}\n    expect: {state: approved}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, b.result(readiness.CtlApprovalPolicy), readiness.Fail, "policy tests 1 passed, 1 failed: wrong")
	// Auto-approved deploys and data changes falling to the default rule.
	b2 := setup(t, "")
	b2.cfg.Policies.Approvals[0].AutoApprove = true
	b2.cfg.Policies.Approvals = b2.cfg.Policies.Approvals[:1]
	want(t, b2.result(readiness.CtlApprovalPolicy), readiness.Fail, "auto-approved: deploy.gate@high (rule deploys)", "no rule (default only): fix.apply@low")
	b3 := setup(t, "")
	want(t, b3.result(readiness.CtlApprovalPolicy), readiness.Warn, "no policy tests configured")
}
