package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// TestReportPeriodQueries plants rows before, inside and after a period and
// checks that the report's queries return exactly the ones inside it, per
// service.
func TestReportPeriodQueries(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		to := time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
		p := store.Period{From: from, To: to}
		before, inside, after := from.Add(-time.Hour), from.Add(48*time.Hour), to.Add(time.Hour)

		for _, at := range []time.Time{before, inside, after} {
			for _, svc := range []string{"shop", "billing"} {
				if _, err := s.InsertBackupRun(ctx, store.BackupRun{Service: svc, Backup: "nightly", Method: "dump", State: store.BackupSucceeded, Actor: "alice", StartedAt: at}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.InsertCheckRun(ctx, store.CheckRunRow{Service: svc, Check: "c", Database: "main", Status: "ok", Actor: "alice", StartedAt: at}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.InsertAccessScan(ctx, store.AccessScanRow{Service: svc, Database: "main", Status: "ok", Actor: "alice", StartedAt: at}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.StartDrillRun(ctx, store.DrillRunRow{Service: svc, Drill: "d" + at.Format("150405"), State: "running", Actor: "alice", StartedAt: at, Report: "{}"}, at.Add(-time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
		}
		backups, err := s.BackupRunsIn(ctx, "shop", p)
		if err != nil || len(backups) != 1 || !backups[0].StartedAt.Equal(inside) || backups[0].Service != "shop" {
			t.Fatalf("backups in period = %+v, %v", backups, err)
		}
		if all, err := s.BackupRunsIn(ctx, "", p); err != nil || len(all) != 2 {
			t.Fatalf("backups of every service = %d, %v; want 2", len(all), err)
		}
		checks, err := s.CheckRunsIn(ctx, "shop", p)
		if err != nil || len(checks) != 1 || !checks[0].StartedAt.Equal(inside) {
			t.Fatalf("checks in period = %+v, %v", checks, err)
		}
		scans, err := s.AccessScansIn(ctx, "billing", p)
		if err != nil || len(scans) != 1 || scans[0].Service != "billing" {
			t.Fatalf("scans in period = %+v, %v", scans, err)
		}
		drills, err := s.DrillRunsIn(ctx, "shop", p)
		if err != nil || len(drills) != 1 || !drills[0].StartedAt.Equal(inside) {
			t.Fatalf("drills in period = %+v, %v", drills, err)
		}

		// Grants overlap the period: revoked before it, no; created after
		// it, no; created before and revoked inside, yes; still active, yes.
		rev := func(t time.Time) *time.Time { return &t }
		for i, g := range []store.GrantRow{
			{CreatedAt: before.Add(-time.Hour), RevokedAt: rev(before), State: "revoked"},
			{CreatedAt: after, State: "active"},
			{CreatedAt: before, RevokedAt: rev(inside), State: "revoked"},
			{CreatedAt: inside, State: "active"},
		} {
			g.Service, g.Database, g.Profile, g.Engine, g.Requester, g.RoleName = "shop", "main", "ro", "postgres", "erin", "r"+string(rune('a'+i))
			g.ExpiresAt = g.CreatedAt.Add(time.Hour)
			if _, err := s.InsertGrant(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		grants, err := s.GrantsIn(ctx, "shop", p)
		if err != nil || len(grants) != 2 || grants[0].RoleName != "rc" || grants[1].RoleName != "rd" {
			t.Fatalf("grants in period = %+v, %v", grants, err)
		}

		var actionIDs []int64
		for _, at := range []time.Time{before, inside, after} {
			a, err := s.InsertAction(ctx, store.ActionRow{Kind: "fix.apply", Service: "shop", Requester: "erin", State: "succeeded", Params: "{}",
				PlanDetails: "{}", Requirement: "{}", Result: "{}", CreatedAt: at})
			if err != nil {
				t.Fatal(err)
			}
			actionIDs = append(actionIDs, a.ID)
		}
		acts, err := s.ActionsIn(ctx, "shop", p)
		if err != nil || len(acts) != 1 || acts[0].ID != actionIDs[1] {
			t.Fatalf("actions in period = %+v, %v", acts, err)
		}
		if _, err := s.InsertReview(ctx, store.ReviewRow{ActionID: actionIDs[1], Breaker: "frank", Required: 2, State: "open", Deadline: to, CreatedAt: inside}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertReview(ctx, store.ReviewRow{ActionID: actionIDs[2], Breaker: "frank", Required: 2, State: "open", Deadline: after, CreatedAt: after}); err != nil {
			t.Fatal(err)
		}
		reviews, err := s.ReviewsIn(ctx, p)
		if err != nil || len(reviews) != 1 || reviews[0].ActionID != actionIDs[1] {
			t.Fatalf("reviews in period = %+v, %v", reviews, err)
		}

		for i, at := range []time.Time{before, inside, after} {
			if _, _, err := s.EnqueueOutbox(ctx, store.OutboxRow{Channel: "ops", Event: "e", Severity: "info", Service: "shop", DedupKey: "k" + string(rune('a'+i)),
				Payload: "{}", CreatedAt: at, NextAttemptAt: at}, false); err != nil {
				t.Fatal(err)
			}
		}
		sent, err := s.OutboxIn(ctx, "shop", p)
		if err != nil || len(sent) != 1 || !sent[0].CreatedAt.Equal(inside) {
			t.Fatalf("notifications in period = %+v, %v", sent, err)
		}

		// Probe results: two raw inside (one up, one down), one rolled into
		// a minute bucket inside, one outside; another location.
		rows := []store.ProbeResultRow{
			{Service: "shop", Probe: "home", Location: "local", Status: "up", StartedAt: inside, DurationMS: 10},
			{Service: "shop", Probe: "home", Location: "local", Status: "down", StartedAt: inside.Add(time.Second), DurationMS: 30},
			{Service: "shop", Probe: "home", Location: "local", Status: "missed", StartedAt: inside.Add(2 * time.Second)},
			{Service: "shop", Probe: "home", Location: "local", Status: "up", StartedAt: before, DurationMS: 5},
			{Service: "shop", Probe: "home", Location: "eu", Status: "up", StartedAt: inside, DurationMS: 7},
			{Service: "billing", Probe: "api", Location: "local", Status: "up", StartedAt: inside, DurationMS: 7},
		}
		if err := s.InsertProbeResults(ctx, rows); err != nil {
			t.Fatal(err)
		}
		// Fold everything older than inside+1m into minute buckets: the
		// results then live in raw rows and rollups at once.
		if _, err := s.RollupProbeResults(ctx, inside.Add(time.Minute+time.Second), time.Second, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertProbeResults(ctx, []store.ProbeResultRow{{Service: "shop", Probe: "home", Location: "local", Status: "error", StartedAt: inside.Add(time.Hour), DurationMS: 50}}); err != nil {
			t.Fatal(err)
		}
		avail, err := s.ProbeAvailabilityIn(ctx, "shop", p)
		if err != nil || len(avail) != 2 {
			t.Fatalf("availability = %+v, %v", avail, err)
		}
		eu, local := avail[0], avail[1]
		if eu.Location != "eu" || eu.Runs != 1 || eu.Up != 1 {
			t.Errorf("eu = %+v", eu)
		}
		if local.Location != "local" || local.Runs != 3 || local.Up != 1 || local.Down != 1 || local.Errors != 1 || local.Missed != 1 || local.DurationMaxMS != 50 || local.DurationSumMS != 90 {
			t.Errorf("local = %+v, want 3 runs (1 up, 1 down, 1 error), 1 missed, max 50 ms, sum 90 ms", local)
		}

		// Audit events by action, and the checkpoint covering a seq.
		if err := s.AppendAudit(ctx, func(h store.AuditHead) ([]store.AuditRecord, error) {
			var recs []store.AuditRecord
			for i, a := range []string{"backup.run", "user.add", "backup.run"} {
				recs = append(recs, store.AuditRecord{Seq: h.Seq + int64(i) + 1, Time: inside, Actor: "alice", Action: a, Target: "t", Outcome: "ok", Details: "{}", PrevHash: "p", Hash: "h"})
			}
			return recs, nil
		}); err != nil {
			t.Fatal(err)
		}
		evs, err := s.AuditEventsByAction(ctx, []string{"backup.run"}, from)
		if err != nil || len(evs) != 2 || evs[0].Seq != 1 || evs[1].Seq != 3 {
			t.Fatalf("events by action = %+v, %v", evs, err)
		}
		if evs, err := s.AuditEventsByAction(ctx, []string{"backup.run"}, after); err != nil || len(evs) != 0 {
			t.Fatalf("events after the period = %+v, %v", evs, err)
		}
		if _, err := s.CheckpointCovering(ctx, 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("no checkpoint yet: %v", err)
		}
		for _, size := range []int64{2, 3} {
			if _, err := s.InsertCheckpoint(ctx, store.Checkpoint{Size: size, HeadHash: "h", Note: "n"}); err != nil {
				t.Fatal(err)
			}
		}
		if c, err := s.CheckpointCovering(ctx, 2); err != nil || c.Size != 3 {
			t.Fatalf("covering 2 = %+v, %v; want the newest, size 3", c, err)
		}
		if _, err := s.CheckpointCovering(ctx, 4); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("covering 4: %v, want not found", err)
		}
	})
}
