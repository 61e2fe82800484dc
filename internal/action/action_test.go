package action_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/gate"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

const testConfig = `
roles:
  - {name: dba, permissions: [approve]}
  - {name: sre, permissions: [approve]}
  - {name: oncall, permissions: [operate, break_glass]}
users:
  - {name: alice, roles: [operator]}
  - {name: bob, roles: [approver]}
  - {name: carol, roles: [approver]}
  - {name: dave, roles: [dba, sre]}
  - {name: erin, roles: [dba]}
  - {name: frank, roles: [oncall]}
services:
  - {name: shop, tier: 1}
  - {name: blog, tier: 4}
policies:
  break_glass_reviewers: 2
  break_glass_review: 24h
  approvals:
    - name: deploys
      match: {action: [deploy.gate], service: [shop]}
      require: [{approvals: 2, from: ["role:approver"]}]
      expires: 4h
    - name: data
      match: {action: [test.*]}
      require: [{approvals: 1, from: ["role:dba"]}, {approvals: 1, from: ["role:sre"]}]
    - name: low-risk
      match: {action: [deploy.gate], service: [blog]}
      auto_approve: true
  freezes:
    - {name: always, start: "0 0 1 1 *", duration: 9000h, services: [shop], actions: [test.frozen]}
`

// testKind is a kind whose plan a test can change and whose executions it
// counts.
type testKind struct {
	name  string
	plan  atomic.Value // string summary
	execs atomic.Int32
	fail  atomic.Bool
}

func newTestKind(name string) *testKind {
	k := &testKind{name: name}
	k.plan.Store("change 3 rows")
	return k
}

func (k *testKind) Name() string { return k.name }
func (k *testKind) Plan(context.Context, *action.Action) (action.Plan, error) {
	s := k.plan.Load().(string)
	return action.Plan{Summary: s, Facts: map[string]any{"rows_affected": len(s)}, Risk: action.RiskHigh}, nil
}
func (k *testKind) Execute(context.Context, *action.Action) (action.Result, error) {
	k.execs.Add(1)
	if k.fail.Load() {
		return action.Result{Summary: "boom"}, errors.New("simulated failure")
	}
	return action.Result{Summary: "done"}, nil
}
func (k *testKind) Verify(context.Context, *action.Action, action.Result) error { return nil }

type captured struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (c *captured) Enqueue(_ context.Context, m notify.Message) ([]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return []int64{int64(len(c.msgs))}, nil
}

func (c *captured) events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		out = append(out, m.Event)
	}
	return out
}

type auditEvent struct{ actor, action, target, outcome string }

type bundle struct {
	p      *action.Pipeline
	s      *store.Store
	kind   *testKind
	frozen *testKind
	notes  *captured
	now    *atomic.Int64 // unix nanos
	users  map[string]auth.Principal
	mu     sync.Mutex
	audit  []auditEvent
}

func (b *bundle) auditLog() []auditEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]auditEvent(nil), b.audit...)
}

func (b *bundle) advance(d time.Duration) { b.now.Add(int64(d)) }

func setup(t *testing.T, storeURL string) *bundle {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "steward.yaml"), []byte(testConfig), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, storeURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b := &bundle{s: s, kind: newTestKind("test.change"), frozen: newTestKind("test.frozen"), notes: &captured{}, now: &atomic.Int64{}, users: map[string]auth.Principal{}}
	b.now.Store(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	custom := map[string][]auth.Permission{}
	for _, r := range cfg.Roles {
		for _, p := range r.Permissions {
			custom[r.Name] = append(custom[r.Name], auth.Permission(p))
		}
	}
	auditFn := func(_ context.Context, actor, act, target, outcome string, _ map[string]any) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.audit = append(b.audit, auditEvent{actor, act, target, outcome})
		return nil
	}
	m := auth.NewManager(s, custom, auditFn)
	for _, u := range cfg.Users {
		su, err := s.CreateUser(ctx, store.User{Name: u.Name, Roles: u.Roles})
		if err != nil {
			t.Fatal(err)
		}
		b.users[u.Name] = m.Principal(su, 0, false)
	}
	kinds := action.NewRegistry()
	kinds.Register(b.kind)
	kinds.Register(b.frozen)
	kinds.Register(&gate.Gate{Config: func() *config.Config { return cfg }})
	b.p, err = action.New(action.Options{Store: s, Kinds: kinds, Config: cfg, Audit: auditFn, Notifier: b.notes,
		Now: func() time.Time { return time.Unix(0, b.now.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sqliteURL(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "s.db") }

func gateReq(service string) action.Request {
	return action.Request{Kind: "deploy.gate", Service: service, Params: json.RawMessage(`{"version":"v1.2.3"}`), Reason: "release 1.2.3"}
}

func TestTwoApprovalsThenExecute(t *testing.T) {
	t.Parallel()
	for _, drv := range []struct {
		name string
		url  func(*testing.T) string
	}{{"sqlite", sqliteURL}, {"postgres", func(t *testing.T) string { return testenv.PostgresURL(t) }}} {
		t.Run(drv.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t, drv.url(t))
			a, err := b.p.Create(ctx, b.users["alice"], gateReq("shop"))
			if err != nil {
				t.Fatal(err)
			}
			if a.State != action.PendingApproval || a.Rule != "deploys" || a.Risk != action.RiskHigh {
				t.Fatalf("created = %s rule %s risk %s", a.State, a.Rule, a.Risk)
			}
			if _, err := b.p.Execute(ctx, b.users["alice"], a.ID); !errors.Is(err, action.ErrNotApproved) {
				t.Fatalf("execute pending: %v, want ErrNotApproved", err)
			}
			if _, _, err := b.p.Approve(ctx, b.users["alice"], a.ID, action.Vote{}); !errors.Is(err, action.ErrSelfApproval) {
				t.Fatalf("self approval: %v", err)
			}
			a, d, err := b.p.Approve(ctx, b.users["bob"], a.ID, action.Vote{Comment: "lgtm"})
			if err != nil || a.State != action.PendingApproval || !strings.Contains(d.Missing, "1") {
				t.Fatalf("first approval: %v state %s missing %q", err, a.State, d.Missing)
			}
			if _, _, err := b.p.Approve(ctx, b.users["bob"], a.ID, action.Vote{}); err == nil {
				a2, _ := b.p.Get(ctx, a.ID)
				if a2.State == action.Approved {
					t.Fatal("the same person counted twice")
				}
			}
			a, _, err = b.p.Approve(ctx, b.users["carol"], a.ID, action.Vote{})
			if err != nil || a.State != action.Approved || a.ExpiresAt == nil {
				t.Fatalf("second approval: %v state %s", err, a.State)
			}
			a, err = b.p.Execute(ctx, b.users["alice"], a.ID)
			if err != nil || a.State != action.Succeeded || a.Result == nil {
				t.Fatalf("execute: %v %+v", err, a)
			}
			if _, err := b.p.Execute(ctx, b.users["alice"], a.ID); !errors.Is(err, action.ErrNotApproved) {
				t.Fatalf("execute twice: %v", err)
			}
			var got []string
			for _, e := range b.auditLog() {
				if e.target == fmt.Sprintf("action:%d", a.ID) {
					got = append(got, e.actor+" "+e.action+" "+e.outcome)
				}
			}
			want := []string{
				"user:alice action.plan ok", "user:alice action.pending ok", "user:alice action.execute denied",
				"user:alice action.approve denied", "user:bob action.approve ok",
			}
			for i, w := range want {
				if i >= len(got) || got[i] != w {
					t.Fatalf("audit trail = %q\nwant prefix %q", got, want)
				}
			}
			tail := strings.Join(got[len(got)-3:], ",")
			if tail != "user:alice action.execute ok,user:alice action.succeeded ok,user:alice action.execute denied" {
				t.Fatalf("audit trail ends %q", tail)
			}
			if ev := b.notes.events(); ev[0] != "action.pending" || ev[len(ev)-1] != "action.succeeded" {
				t.Fatalf("notifications = %v", ev)
			}
		})
	}
}

func TestNoPathExecutesUnapproved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	a, err := b.p.Create(ctx, b.users["alice"], gateReq("shop"))
	if err != nil {
		t.Fatal(err)
	}
	// Someone with database access flips the state without any approvals.
	if _, err := b.s.DB().Exec("UPDATE actions SET state = 'approved' WHERE id = ?", a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.p.Execute(ctx, b.users["alice"], a.ID); !errors.Is(err, action.ErrNotApproved) {
		t.Fatalf("execute forged approval: %v, want ErrNotApproved", err)
	}
	if n := b.kind.execs.Load(); n != 0 {
		t.Fatalf("kind executed %d times", n)
	}
	// A viewer cannot execute at all.
	if _, err := b.p.Execute(ctx, b.users["bob"], a.ID); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("approver executing: %v, want ErrForbidden", err)
	}
}

func TestOnePersonCountsOnceAcrossGroups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	a, err := b.p.Create(ctx, b.users["alice"], action.Request{Kind: "test.change", Service: "shop", Reason: "fix data"})
	if err != nil {
		t.Fatal(err)
	}
	a, d, err := b.p.Approve(ctx, b.users["dave"], a.ID, action.Vote{}) // dave holds dba AND sre
	if err != nil || a.State != action.PendingApproval {
		t.Fatalf("dave alone: %v %s %+v", err, a.State, d)
	}
	if _, _, err := b.p.Approve(ctx, b.users["bob"], a.ID, action.Vote{}); !errors.Is(err, action.ErrNotEligible) {
		t.Fatalf("bob is not dba/sre: %v", err)
	}
	a, _, err = b.p.Approve(ctx, b.users["erin"], a.ID, action.Vote{}) // erin: dba; dave then counts for sre
	if err != nil || a.State != action.Approved {
		t.Fatalf("dave+erin: %v %s", err, a.State)
	}
}

func TestRejectAndCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	a, _ := b.p.Create(ctx, b.users["alice"], gateReq("shop"))
	if _, _, err := b.p.Reject(ctx, b.users["bob"], a.ID, action.Vote{}); !errors.Is(err, action.ErrReasonRequired) {
		t.Fatalf("reject without comment: %v", err)
	}
	a, _, err := b.p.Reject(ctx, b.users["bob"], a.ID, action.Vote{Comment: "not during the sale"})
	if err != nil || a.State != action.Rejected {
		t.Fatalf("reject: %v %s", err, a.State)
	}
	if _, _, err := b.p.Approve(ctx, b.users["carol"], a.ID, action.Vote{}); !errors.Is(err, action.ErrAlreadyDecided) {
		t.Fatalf("approve rejected: %v", err)
	}
	c, _ := b.p.Create(ctx, b.users["alice"], gateReq("shop"))
	if _, err := b.p.Cancel(ctx, b.users["bob"], c.ID, "x"); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("non-requester cancel: %v", err)
	}
	if c, err = b.p.Cancel(ctx, b.users["alice"], c.ID, "wrong version"); err != nil || c.State != action.Cancelled {
		t.Fatalf("cancel: %v", err)
	}
}

func TestPlanChangeVoidsApprovals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	a, _ := b.p.Create(ctx, b.users["alice"], action.Request{Kind: "test.change", Service: "shop", Reason: "fix"})
	oldHash := a.PlanHash
	if _, _, err := b.p.Approve(ctx, b.users["dave"], a.ID, action.Vote{}); err != nil {
		t.Fatal(err)
	}
	b.kind.plan.Store("change 3000 rows")
	a, changed, err := b.p.Replan(ctx, b.users["alice"], a.ID)
	if err != nil || !changed || a.PlanHash == oldHash || a.State != action.PendingApproval {
		t.Fatalf("replan: changed=%v err=%v state=%s", changed, err, a.State)
	}
	if _, _, err := b.p.Approve(ctx, b.users["erin"], a.ID, action.Vote{PlanHash: oldHash}); !errors.Is(err, action.ErrPlanChanged) {
		t.Fatalf("vote pinned to old plan: %v", err)
	}
	a, _, err = b.p.Approve(ctx, b.users["erin"], a.ID, action.Vote{})
	if err != nil || a.State != action.PendingApproval {
		t.Fatalf("dave's old approval must not count: %v %s", err, a.State)
	}
	a, _, err = b.p.Approve(ctx, b.users["dave"], a.ID, action.Vote{})
	if err != nil || a.State != action.Approved {
		t.Fatalf("re-approval: %v %s", err, a.State)
	}
	// The plan changes between approval and execution: execution refuses.
	b.kind.plan.Store("change 9999 rows")
	a, err = b.p.Execute(ctx, b.users["alice"], a.ID)
	if !errors.Is(err, action.ErrPlanChanged) || a.State != action.PendingApproval || b.kind.execs.Load() != 0 {
		t.Fatalf("execute after plan change: %v state %s execs %d", err, a.State, b.kind.execs.Load())
	}
}

func TestApprovalExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	// An approval older than the rule's expiry (4h) does not count.
	a, _ := b.p.Create(ctx, b.users["alice"], gateReq("shop"))
	if _, _, err := b.p.Approve(ctx, b.users["bob"], a.ID, action.Vote{}); err != nil {
		t.Fatal(err)
	}
	b.advance(5 * time.Hour)
	a, d, err := b.p.Approve(ctx, b.users["carol"], a.ID, action.Vote{})
	if err != nil || a.State != action.PendingApproval {
		t.Fatalf("stale approval counted: %v %s %+v", err, a.State, d)
	}
	// Approved but not executed within the expiry: expired.
	a2, _ := b.p.Create(ctx, b.users["alice"], gateReq("shop"))
	b.p.Approve(ctx, b.users["bob"], a2.ID, action.Vote{})
	a2, _, _ = b.p.Approve(ctx, b.users["carol"], a2.ID, action.Vote{})
	if a2.State != action.Approved {
		t.Fatalf("a2 = %s", a2.State)
	}
	b.advance(4*time.Hour + time.Second)
	a2, err = b.p.Execute(ctx, b.users["alice"], a2.ID)
	if !errors.Is(err, action.ErrExpired) || a2.State != action.Expired {
		t.Fatalf("execute expired: %v %s", err, a2.State)
	}
	// The sweeper expires the rest.
	a3, _ := b.p.Create(ctx, b.users["alice"], gateReq("shop"))
	b.p.Approve(ctx, b.users["bob"], a3.ID, action.Vote{})
	b.p.Approve(ctx, b.users["carol"], a3.ID, action.Vote{})
	b.advance(5 * time.Hour)
	res, err := b.p.Sweep(ctx, time.Hour)
	if err != nil || res.Expired != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
}

func TestAutoApprove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	a, err := b.p.Create(ctx, b.users["alice"], gateReq("blog"))
	if err != nil || a.State != action.Approved || a.Rule != "low-risk" || a.Risk != action.RiskLow {
		t.Fatalf("auto approve: %v %s %s", err, a.State, a.Rule)
	}
	if a, err = b.p.Execute(ctx, b.users["alice"], a.ID); err != nil || a.State != action.Succeeded {
		t.Fatalf("execute: %v", err)
	}
}

func TestBreakGlassNotifiesEveryoneAndNeedsTwoOtherReviewers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	if _, _, err := b.p.BreakGlass(ctx, b.users["alice"], action.Request{Kind: "test.change", Service: "shop", Reason: "db on fire"}); !errors.Is(err, action.ErrNoBreakGlass) {
		t.Fatalf("operator breaking glass: %v", err)
	}
	if n := b.kind.execs.Load(); n != 0 {
		t.Fatal("executed without permission")
	}
	a, review, err := b.p.BreakGlass(ctx, b.users["frank"], action.Request{Kind: "test.frozen", Service: "shop", Reason: "INC-7 outage"})
	if err != nil || a.State != action.Succeeded || !a.BreakGlass || a.Freeze != "always" {
		t.Fatalf("break glass: %v %+v", err, a)
	}
	var bg *notify.Message
	for i, m := range b.notes.msgs {
		if m.Event == "break_glass.used" {
			bg = &b.notes.msgs[i]
		}
	}
	if bg == nil || !bg.All || bg.Severity != "critical" {
		t.Fatalf("break-glass notification: %+v", bg)
	}
	if _, err := b.p.CompleteReview(ctx, b.users["frank"], review.ID, "looked fine"); !errors.Is(err, action.ErrSelfReview) {
		t.Fatalf("self review: %v", err)
	}
	r, err := b.p.CompleteReview(ctx, b.users["bob"], review.ID, "checked the logs")
	if err != nil || r.State != action.ReviewOpen {
		t.Fatalf("first reviewer: %v %s", err, r.State)
	}
	if _, err := b.p.CompleteReview(ctx, b.users["bob"], review.ID, "again"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same reviewer twice: %v", err)
	}
	// Overdue reviews alert again.
	b.advance(25 * time.Hour)
	res, err := b.p.Sweep(ctx, time.Hour)
	if err != nil || res.OverdueAlerted != 1 {
		t.Fatalf("overdue sweep: %+v %v", res, err)
	}
	if res, _ := b.p.Sweep(ctx, time.Hour); res.OverdueAlerted != 0 {
		t.Fatal("re-alerted within the interval")
	}
	r, err = b.p.CompleteReview(ctx, b.users["carol"], review.ID, "agreed, follow-up INC-8")
	if err != nil || r.State != action.ReviewCompleted {
		t.Fatalf("second reviewer: %v %s", err, r.State)
	}
}

func TestFreezeBlocksNormalExecution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	a, _ := b.p.Create(ctx, b.users["alice"], action.Request{Kind: "test.frozen", Service: "shop", Reason: "fix"})
	b.p.Approve(ctx, b.users["dave"], a.ID, action.Vote{})
	a, _, _ = b.p.Approve(ctx, b.users["erin"], a.ID, action.Vote{})
	if a.State != action.Approved {
		t.Fatalf("state %s", a.State)
	}
	if _, err := b.p.Execute(ctx, b.users["alice"], a.ID); !errors.Is(err, action.ErrFrozen) {
		t.Fatalf("execute during freeze: %v", err)
	}
}

func TestConcurrentExecuteRunsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	a, _ := b.p.Create(ctx, b.users["alice"], action.Request{Kind: "test.change", Service: "shop", Reason: "fix"})
	b.p.Approve(ctx, b.users["dave"], a.ID, action.Vote{})
	b.p.Approve(ctx, b.users["erin"], a.ID, action.Vote{})
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.p.Execute(ctx, b.users["alice"], a.ID); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || b.kind.execs.Load() != 1 {
		t.Fatalf("successes %d, executions %d; want 1 and 1", ok.Load(), b.kind.execs.Load())
	}
}

func TestFailedExecutionIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	b.kind.fail.Store(true)
	a, _ := b.p.Create(ctx, b.users["alice"], action.Request{Kind: "test.change", Service: "shop", Reason: "fix"})
	b.p.Approve(ctx, b.users["dave"], a.ID, action.Vote{})
	b.p.Approve(ctx, b.users["erin"], a.ID, action.Vote{})
	a, err := b.p.Execute(ctx, b.users["alice"], a.ID)
	if err == nil || a.State != action.Failed || !strings.Contains(a.Error, "simulated") {
		t.Fatalf("failed execution: %v %+v", err, a)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, sqliteURL(t))
	cases := []struct {
		req  action.Request
		want error
	}{
		{action.Request{Kind: "deploy.gate", Service: "shop", Params: json.RawMessage(`{"version":"v1"}`)}, action.ErrReasonRequired},
		{action.Request{Kind: "nope", Reason: "x"}, action.ErrUnknownKind},
		{action.Request{Kind: "deploy.gate", Service: "nope", Reason: "x"}, action.ErrUnknownService},
		{action.Request{Kind: "deploy.gate", Service: "shop", Reason: "x", Params: json.RawMessage(`{"version":"bad version!"}`)}, action.ErrBadParams},
		{action.Request{Kind: "deploy.gate", Service: "shop", Reason: "x", Params: json.RawMessage(`{`)}, action.ErrBadParams},
	}
	for _, c := range cases {
		if _, err := b.p.Create(ctx, b.users["alice"], c.req); !errors.Is(err, c.want) {
			t.Errorf("%+v: err %v, want %v", c.req, err, c.want)
		}
	}
	if acts, _ := b.p.List(ctx, store.ActionFilter{}); len(acts) != 0 {
		t.Fatalf("bad requests created %d actions", len(acts))
	}
}
