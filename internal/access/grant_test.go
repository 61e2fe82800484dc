package access_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/store"
)

func TestAccessGrantEndToEndPostgres(t *testing.T) {
	t.Parallel()
	testEndToEnd(t, setupPostgres(t))
}

func TestAccessGrantEndToEndMariaDB(t *testing.T) {
	t.Parallel()
	testEndToEnd(t, setupMySQL(t))
}

// testEndToEnd: request → two approvals → connect with the handed-out
// connection string → SELECT works, UPDATE denied → an overlapping grant →
// at expiry the open session is terminated, a new login fails, the other
// grant is untouched.
func testEndToEnd(t *testing.T, b *bundle) {
	ctx := context.Background()
	id := b.requestApproved(t, "alice", "read-only", "20m")
	a, _ := b.p.Get(ctx, id)
	if a.Risk != action.RiskMedium || a.Plan.Facts["writes"] != false || a.Plan.Facts["duration_minutes"].(float64) != 20 {
		t.Fatalf("plan: risk %s facts %v", a.Risk, a.Plan.Facts)
	}
	// An approver executing it would burn the approval for nothing: refused
	// before any change, and the action stays approved.
	if _, err := b.p.Execute(ctx, b.users["bob"], id); err == nil {
		t.Fatal("execute by someone else than the requester succeeded")
	}
	if _, _, err := access.Issue(ctx, b.p, b.users["frank"], id); !errors.Is(err, access.ErrNotRequester) {
		t.Fatalf("issue by frank: %v", err)
	}
	if a, _ := b.p.Get(ctx, id); a.State != action.Approved {
		t.Fatalf("after refused executions the action is %s", a.State)
	}
	a, cred, err := access.Issue(ctx, b.p, b.users["alice"], id)
	if err != nil || cred == nil {
		t.Fatalf("issue: %v", err)
	}
	if strings.Contains(a.Result.Summary+fmtAny(a.Result.Details), cred.Password) {
		t.Fatal("the action result contains the password")
	}
	g, err := b.s.GetGrant(ctx, cred.GrantID)
	if err != nil || g.State != access.StateActive || g.ActionID != id || !strings.HasPrefix(g.RoleName, "stw_alice_") {
		t.Fatalf("grant: %+v %v", g, err)
	}
	if strings.Contains(fmtAny(g), cred.Password) || strings.Contains(b.allAudit(), cred.Password) || !strings.HasPrefix(g.CredentialHash, "sha256:") {
		t.Fatal("the password is stored or audited")
	}
	if got := g.ExpiresAt.Sub(*g.IssuedAt); got < 19*time.Minute || got > 20*time.Minute {
		t.Fatalf("expiry %s after issue", got)
	}
	b.checkRoleAttributes(t, g)

	conn, db, err := b.connect(ctx, *cred)
	if err != nil {
		t.Fatalf("connect with the handed-out DSN: %v", err)
	}
	defer db.Close()
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("SELECT: %d %v", n, err)
	}
	if _, err := conn.ExecContext(ctx, "UPDATE orders SET status = 'x' WHERE id = 1"); err == nil || !deniedErr(err) {
		t.Fatalf("UPDATE by read-only: %v", err)
	}
	// Keep the session busy inside a transaction: termination still works.
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if b.engine == dbx.MySQL {
		// MariaDB checks passwords even on loopback: a wrong one is refused.
		bad := *cred
		bad.DSN = strings.Replace(cred.DSN, cred.Password, strings.Repeat("0", 64), 1)
		if c, d2, err := b.connect(ctx, bad); err == nil {
			c.Close()
			d2.Close()
			t.Fatal("login with a wrong password succeeded")
		}
	}

	// An overlapping grant of another person is an independent role.
	g2, cred2 := b.breakGlass(t)

	// Time passes: the sweeper revokes the expired one only.
	res, err := access.Sweep(ctx, b.d, g.ExpiresAt.Add(time.Second))
	if err != nil || res.Expired != 1 || res.Revoked != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err == nil {
		t.Fatal("the open session survived the revocation")
	}
	conn.Close()
	if c, d2, err := b.connect(ctx, *cred); err == nil {
		c.Close()
		d2.Close()
		t.Fatal("a new login with the revoked credentials succeeded")
	} else if !authErr(err) {
		t.Fatalf("login after revocation failed for another reason: %v", err)
	}
	if exists, _ := b.roleExists(t, g.RoleName); exists {
		t.Fatal("role still exists")
	}
	g, _ = b.s.GetGrant(ctx, g.ID)
	rec := access.ParseRevocation(g.Revocation)
	if g.State != access.StateRevoked || g.RevokedAt == nil || len(rec.Steps) != 5 || rec.Reason != "expired" || rec.CompletedAt == nil {
		t.Fatalf("revoked grant: %+v %+v", g, rec)
	}
	for i, s := range access.Steps {
		if rec.Steps[i].Name != s || rec.Steps[i].FinishedAt.Before(rec.Steps[i].StartedAt) {
			t.Fatalf("step %d: %+v", i, rec.Steps[i])
		}
	}
	if !strings.Contains(rec.Steps[1].Detail, "terminated 1 session") || !strings.Contains(rec.Steps[4].Detail, "refused by the server") {
		t.Fatalf("steps: %+v", rec.Steps)
	}
	if ev := b.events("access.revoke"); len(ev) != 1 || ev[0].outcome != "ok" || ev[0].details["steps"] == nil {
		t.Fatalf("revoke audit: %+v", ev)
	}
	if ev := b.events("access.grant"); len(ev) != 2 {
		t.Fatalf("grant audit: %+v", ev)
	}

	// The other grant still works.
	c2, d2, err := b.connect(ctx, cred2)
	if err != nil {
		t.Fatalf("the overlapping grant stopped working: %v", err)
	}
	if err := c2.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	d2.Close()

	// access list: who, what, why, approvers.
	list, err := access.List(ctx, b.d, access.ListFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if l := list[1]; l.ID != g.ID || strings.Join(l.Approvers, ",") != "bob,carol" || l.Reason == "" || l.Revocation == nil {
		t.Fatalf("list entry: %+v", l)
	}
	active, _ := access.List(ctx, b.d, access.ListFilter{Active: true})
	if len(active) != 1 || active[0].ID != g2.ID || !active[0].BreakGlass {
		t.Fatalf("active: %+v", active)
	}

	// Manual revoke of the break-glass grant by its requester.
	g2, err = access.Revoke(ctx, b.d, b.users["frank"], g2.ID, "done with the incident")
	if err != nil || g2.State != access.StateRevoked {
		t.Fatalf("revoke: %+v %v", g2, err)
	}
	if _, err := access.Revoke(ctx, b.d, b.users["frank"], g2.ID, "again"); !errors.Is(err, access.ErrNotRevocable) {
		t.Fatalf("second revoke: %v", err)
	}
}

// breakGlass issues a grant to frank at once, through the pipeline's
// break-glass path.
func (b *bundle) breakGlass(t *testing.T) (store.GrantRow, access.Credential) {
	t.Helper()
	ctx := context.Background()
	a, review, cred, err := access.BreakGlass(ctx, b.p, b.users["frank"], access.Request("shop", "main", "read-only", "1h", "INC-43: outage", "", true))
	if err != nil || cred == nil || !a.BreakGlass || a.State != action.Succeeded || review.ID == 0 {
		t.Fatalf("break-glass: %v", err)
	}
	if len(b.notes.find("break_glass.used")) == 0 || len(b.notes.find("access.break_glass")) == 0 {
		t.Fatal("break-glass not announced")
	}
	g, err := b.s.GetGrant(ctx, cred.GrantID)
	if err != nil || !g.BreakGlass {
		t.Fatalf("grant: %+v %v", g, err)
	}
	return g, *cred
}

func (b *bundle) checkRoleAttributes(t *testing.T, g store.GrantRow) {
	t.Helper()
	ctx := context.Background()
	if b.engine == dbx.Postgres {
		var limit int
		var until time.Time
		var secret string
		if err := b.admin.QueryRowContext(ctx, "SELECT rolconnlimit, rolvaliduntil, rolpassword FROM pg_authid WHERE rolname = $1", g.RoleName).Scan(&limit, &until, &secret); err != nil {
			t.Fatal(err)
		}
		if limit != 3 || until.Sub(g.ExpiresAt).Abs() > time.Millisecond || !strings.HasPrefix(secret, "SCRAM-SHA-256$4096:") {
			t.Fatalf("role attributes: limit %d until %s (want %s) secret %.20s", limit, until, g.ExpiresAt, secret)
		}
		return
	}
	var maxConn int
	var life string
	if err := b.admin.QueryRowContext(ctx, "SELECT max_user_connections, JSON_VALUE(Priv, '$.password_lifetime') FROM mysql.user JOIN mysql.global_priv USING (User, Host) WHERE User = ?",
		g.RoleName).Scan(&maxConn, &life); err != nil {
		t.Fatal(err)
	}
	if maxConn != 3 || life != "1" {
		t.Fatalf("user attributes: max connections %d, password lifetime %s days", maxConn, life)
	}
}

func deniedErr(err error) bool {
	m := err.Error()
	return strings.Contains(m, "42501") || strings.Contains(m, "permission denied") || strings.Contains(m, "1142") || strings.Contains(m, "command denied")
}

func authErr(err error) bool {
	m := err.Error()
	return strings.Contains(m, "28000") || strings.Contains(m, "28P01") || strings.Contains(m, "1045") || strings.Contains(m, "Access denied")
}

func TestAccessGrantRefusals(t *testing.T) {
	t.Parallel()
	b := setupPostgres(t)
	ctx := context.Background()
	req := func(profile, dur string, bg bool) action.Request {
		return access.Request("shop", "main", profile, dur, "INC-1", "", bg)
	}
	if _, err := b.p.Create(ctx, b.users["alice"], req("superuser", "1h", false)); !errors.Is(err, access.ErrUnknownProfile) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("unknown profile: %v", err)
	}
	if _, err := b.p.Create(ctx, b.users["alice"], req("read-only", "5h", false)); !errors.Is(err, access.ErrTooLong) || !strings.Contains(err.Error(), "at most 4h0m0s") {
		t.Fatalf("too long: %v", err)
	}
	if _, err := b.p.Create(ctx, b.users["alice"], req("read-only", "", false)); !errors.Is(err, action.ErrBadParams) {
		t.Fatalf("no duration: %v", err)
	}
	if _, err := b.p.Create(ctx, b.users["dave"], req("read-only", "1h", false)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("viewer requests: %v", err)
	}
	a, err := b.p.Create(ctx, b.users["alice"], req("read-write", "1h", false))
	if err != nil || a.Risk != action.RiskHigh || a.Plan.Facts["writes"] != true {
		t.Fatalf("read-write plan: %v %+v", err, a)
	}
	if _, _, err := b.p.Approve(ctx, b.users["alice"], a.ID, action.Vote{}); !errors.Is(err, action.ErrSelfApproval) {
		t.Fatalf("self approval: %v", err)
	}
	if _, _, err := b.p.Approve(ctx, b.users["frank"], a.ID, action.Vote{}); !errors.Is(err, action.ErrNotEligible) {
		t.Fatalf("approval by a non-approver: %v", err)
	}
	if _, _, _, err := access.BreakGlass(ctx, b.p, b.users["frank"], req("read-write", "1h", true)); !errors.Is(err, access.ErrBreakGlassForbidden) {
		t.Fatalf("break-glass on a profile that forbids it: %v", err)
	}
	if _, _, _, err := access.BreakGlass(ctx, b.p, b.users["frank"], req("read-only", "2h", true)); !errors.Is(err, access.ErrTooLong) || !strings.Contains(err.Error(), "break_glass_max") {
		t.Fatalf("break-glass over break_glass_max: %v", err)
	}
	if _, _, _, err := access.BreakGlass(ctx, b.p, b.users["alice"], req("read-only", "10m", true)); !errors.Is(err, action.ErrNoBreakGlass) {
		t.Fatalf("break-glass without the permission: %v", err)
	}
	// A break-glass through the generic path without the flag is refused at
	// execution: the profile's break-glass rules cannot be sidestepped.
	act, _, err := b.p.BreakGlass(access.WithReceiver(ctx, access.NewReceiver("frank")), b.users["frank"], req("read-write", "1h", false))
	if err == nil || act == nil || act.State != action.Failed {
		t.Fatalf("generic break-glass: %v", err)
	}
	if gs, _ := b.s.ListGrants(ctx, store.GrantFilter{}); len(gs) != 0 {
		t.Fatalf("grants created by refused requests: %d", len(gs))
	}
}

func TestAccessGrantDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(*testing.T) *bundle
	}{{"postgres", setupPostgres}, {"mariadb", setupMySQL}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := tc.setup(t)
			ctx := context.Background()
			id := b.requestApproved(t, "alice", "read-only", "1h")
			b.unreachable(t)
			a, cred, err := access.Issue(ctx, b.p, b.users["alice"], id)
			if err == nil || cred != nil || a.State != action.Failed {
				t.Fatalf("issue on an unreachable database: %v", err)
			}
			gs, _ := b.s.ListGrants(ctx, store.GrantFilter{})
			if len(gs) != 1 || gs[0].State != access.StateFailed || gs[0].LastError == "" {
				t.Fatalf("grant: %+v", gs)
			}
			b.reachable()
			// Failing half-way: the role is created, then a GRANT fails (no
			// such table). Nothing may be left.
			id = b.requestApproved(t, "alice", "broken", "1h")
			if _, _, err := access.Issue(ctx, b.p, b.users["alice"], id); err == nil {
				t.Fatal("a grant on a missing table succeeded")
			}
			gs, _ = b.s.ListGrants(ctx, store.GrantFilter{})
			if len(gs) != 2 || gs[0].State != access.StateFailed || !strings.HasPrefix(gs[0].RoleName, "stw_alice_") {
				t.Fatalf("grants: %+v", gs)
			}
			if exists, _ := b.roleExists(t, gs[0].RoleName); exists {
				t.Fatalf("half-created role %s left behind", gs[0].RoleName)
			}
		})
	}
}

func TestAccessRevokeRetriesWhileUnreachable(t *testing.T) {
	t.Parallel()
	b := setupPostgres(t)
	ctx := context.Background()
	g, cred := b.grant(t, "alice", "read-only", "1h")
	conn, db, err := b.connect(ctx, cred)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer conn.Close()
	b.unreachable(t)
	at := g.ExpiresAt.Add(time.Second)
	for i := 1; i <= 2; i++ {
		res, err := access.Sweep(ctx, b.d, at.Add(time.Duration(i)*time.Hour))
		if err != nil || res.Retrying != 1 || res.Revoked != 0 {
			t.Fatalf("sweep %d: %+v %v", i, res, err)
		}
		g, _ = b.s.GetGrant(ctx, g.ID)
		if g.State != access.StateRevoking || g.RevokeAttempts != i || !strings.Contains(g.LastError, "connect") || g.NextAttemptAt == nil {
			t.Fatalf("after attempt %d: %+v", i, g)
		}
	}
	if alerts := b.notes.find("access.revoke_failed"); len(alerts) != 2 || alerts[0].Severity != "critical" {
		t.Fatalf("alerts: %+v", alerts)
	}
	if ev := b.events("access.revoke"); len(ev) != 1 || ev[0].outcome != "error" {
		t.Fatalf("audit of the failed attempt: %+v", ev)
	}
	if exists, canLogin := b.roleExists(t, g.RoleName); !exists || !canLogin {
		t.Fatal("the role changed although the database was unreachable to Steward")
	}
	// The database is back: the next sweep completes, with proof.
	b.reachable()
	res, err := access.Sweep(ctx, b.d, at.Add(3*time.Hour))
	if err != nil || res.Revoked != 1 {
		t.Fatalf("sweep after recovery: %+v %v", res, err)
	}
	g, _ = b.s.GetGrant(ctx, g.ID)
	rec := access.ParseRevocation(g.Revocation)
	if g.State != access.StateRevoked || rec.Attempts != 3 || len(rec.Errors) != 2 || g.LastError != "" {
		t.Fatalf("revoked: %+v %+v", g, rec)
	}
	if r := b.notes.find("access.revoked"); len(r) != 1 || !r[0].Resolve {
		t.Fatalf("resolve: %+v", r)
	}
}

func TestAccessRevokeResumesAfterCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(*testing.T) *bundle
	}{{"postgres", setupPostgres}, {"mariadb", setupMySQL}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := tc.setup(t)
			ctx := context.Background()
			g, cred := b.grant(t, "alice", "read-only", "1h")
			conn, db, err := b.connect(ctx, cred)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			defer conn.Close()
			b.d.AfterStep = func(id int64, step string) error {
				if step == access.StepTerminate {
					return errors.New("killed")
				}
				return nil
			}
			at := g.ExpiresAt.Add(time.Second)
			if res, err := access.Sweep(ctx, b.d, at); err != nil || res.Revoked != 0 || res.Retrying != 0 {
				t.Fatalf("sweep that dies: %+v %v", res, err)
			}
			g, _ = b.s.GetGrant(ctx, g.ID)
			rec := access.ParseRevocation(g.Revocation)
			if g.State != access.StateRevoking || len(rec.Steps) != 2 {
				t.Fatalf("after the crash: %+v %+v", g, rec)
			}
			// Logins are blocked already, the role still exists.
			if exists, canLogin := b.roleExists(t, g.RoleName); !exists || canLogin {
				t.Fatalf("after the crash: exists %v can login %v", exists, canLogin)
			}
			if c, d2, err := b.connect(ctx, cred); err == nil {
				c.Close()
				d2.Close()
				t.Fatal("login after logins were blocked")
			}
			// Within the lease nobody takes it over; after it, the next sweep
			// resumes where the dead one stopped.
			b.d.AfterStep = nil
			if res, _ := access.Sweep(ctx, b.d, at.Add(time.Second)); res.Revoked != 0 {
				t.Fatalf("sweep within the lease: %+v", res)
			}
			res, err := access.Sweep(ctx, b.d, at.Add(2*b.d.Lease))
			if err != nil || res.Revoked != 1 {
				t.Fatalf("resuming sweep: %+v %v", res, err)
			}
			g, _ = b.s.GetGrant(ctx, g.ID)
			rec = access.ParseRevocation(g.Revocation)
			if g.State != access.StateRevoked || len(rec.Steps) != 5 || rec.Attempts != 2 || rec.Steps[1].Attempt != 1 || rec.Steps[2].Attempt != 2 {
				t.Fatalf("resumed: %+v %+v", g, rec)
			}
			if exists, _ := b.roleExists(t, g.RoleName); exists {
				t.Fatal("role still exists")
			}
		})
	}
}

// TestSweepAtStartRevokesWhatExpiredWhileDown: grants expire while Steward
// is stopped; a new process (new deps on the same store) revokes them all
// in its first sweep, before it would serve.
func TestAccessSweepAtStartRevokesWhatExpiredWhileDown(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	ctx := context.Background()
	g1, _ := b.grant(t, "alice", "read-only", "1h")
	g2, _ := b.grant(t, "alice", "read-only", "2h")
	g3, _ := b.grant(t, "alice", "read-only", "4h")
	restarted := &access.Deps{Config: b.d.Config, Store: b.s, Audit: b.d.Audit, Notifier: b.notes}
	res, err := access.Sweep(ctx, restarted, g2.ExpiresAt.Add(time.Minute))
	if err != nil || res.Expired != 2 || res.Revoked != 2 {
		t.Fatalf("first sweep: %+v %v", res, err)
	}
	for _, g := range []store.GrantRow{g1, g2} {
		if got, _ := b.s.GetGrant(ctx, g.ID); got.State != access.StateRevoked {
			t.Fatalf("grant %d: %s", g.ID, got.State)
		}
	}
	if got, _ := b.s.GetGrant(ctx, g3.ID); got.State != access.StateActive {
		t.Fatalf("unexpired grant: %s", got.State)
	}
	if exists, canLogin := b.roleExists(t, g3.RoleName); !exists || !canLogin {
		t.Fatal("the unexpired grant's user was touched")
	}
}

// TestSessionThatTakesLongToDie: a MariaDB session killed in the middle of
// a large uncommitted transaction stays in the processlist while it rolls
// back; revocation keeps checking (and killing) until it is gone.
func TestAccessSessionThatTakesLongToDie(t *testing.T) {
	t.Parallel()
	b := setupMySQL(t)
	ctx := context.Background()
	if _, err := b.admin.ExecContext(ctx, "CREATE TABLE big (id INT PRIMARY KEY, pad CHAR(200)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	g, cred := b.grant(t, "alice", "read-write", "1h")
	conn, db, err := b.connect(ctx, cred)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_400000"); err != nil {
		t.Fatal(err)
	}
	res, err := access.Sweep(ctx, b.d, g.ExpiresAt.Add(time.Second))
	if err != nil || res.Revoked != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	g, _ = b.s.GetGrant(ctx, g.ID)
	rec := access.ParseRevocation(g.Revocation)
	confirm := rec.Steps[2]
	t.Logf("confirm step: %d checks, %.1f ms: %s", confirm.Checks, confirm.Millis, confirm.Detail)
	if confirm.Name != access.StepConfirm || confirm.Checks < 2 {
		t.Fatalf("the rolling-back session was not waited for: %+v", confirm)
	}
	var n int
	if err := b.admin.QueryRowContext(ctx, "SELECT count(*) FROM big").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the rollback: %d %v", n, err)
	}
}
