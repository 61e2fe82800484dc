package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

var t0 = time.Date(2025, 6, 11, 12, 0, 0, 0, time.UTC)

func evalPolicies() config.Policies {
	return config.Policies{Approvals: []config.ApprovalRule{
		{Name: "two-groups", Match: config.PolicyMatch{Action: []string{"fix.*"}},
			Require: []config.Requirement{req(1, "role:dba"), req(1, "role:sre")}, Deny: 1, Expires: "4h"},
		{Name: "n-of-m", Match: config.PolicyMatch{Action: []string{"sql.exec"}},
			Require: []config.Requirement{req(2, "user:bob", "user:carol", "user:dave")}, Deny: 1, Expires: "1h"},
		{Name: "two-of-role", Match: config.PolicyMatch{Action: []string{"deploy.gate"}},
			Require: []config.Requirement{req(2, "role:approver")}, Deny: 2, Expires: "24h"},
		{Name: "mixed", Match: config.PolicyMatch{Action: []string{"access.grant"}},
			Require: []config.Requirement{req(2, "role:dba"), req(1, "role:sre", "user:erin")}, Deny: 1, Expires: "7d"},
		{Name: "auto", Match: config.PolicyMatch{Action: []string{"probe.*"}}, AutoApprove: true},
	}}
}

// v builds a vote for the current plan cast ago before t0.
func v(user, decision string, ago time.Duration, roles ...string) Vote {
	return Vote{User: user, Roles: roles, Decision: decision, PlanHash: "p1", At: t0.Add(-ago)}
}

func TestPolicyEvaluate(t *testing.T) {
	t.Parallel()
	e := mustNew(t, evalPolicies())
	stale := v("bob", Approve, time.Minute, "sre")
	stale.PlanHash = "p0"
	staleReject := v("bob", Reject, time.Minute, "sre")
	staleReject.PlanHash = "p0"
	for _, tc := range []struct {
		name       string
		kind       string
		votes      []Vote
		state      string
		auto       bool
		counted    [][]string // per group
		missing    string
		rejections int
		ignored    map[string]string // user -> reason substring
	}{
		{name: "no votes", kind: "fix.apply", state: StatePending, counted: [][]string{{}, {}},
			missing: "1 more approval from role:dba; 1 more from role:sre"},
		{name: "one from each group", kind: "fix.apply", state: StateApproved,
			votes:   []Vote{v("carol", Approve, 2*time.Minute, "dba"), v("bob", Approve, time.Minute, "sre")},
			counted: [][]string{{"carol"}, {"bob"}}},
		{name: "one person holding both roles fills one group", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("dave", Approve, time.Minute, "dba", "sre")},
			counted: [][]string{{"dave"}, {}}, missing: "1 more approval from role:sre"},
		{name: "matching moves the two-role person to the other group", kind: "fix.apply", state: StateApproved,
			votes:   []Vote{v("dave", Approve, time.Hour, "dba", "sre"), v("carol", Approve, time.Minute, "dba")},
			counted: [][]string{{"carol"}, {"dave"}}},
		{name: "two-role person and an sre", kind: "fix.apply", state: StateApproved,
			votes:   []Vote{v("dave", Approve, time.Hour, "dba", "sre"), v("bob", Approve, time.Minute, "sre")},
			counted: [][]string{{"dave"}, {"bob"}}},
		{name: "two people with both roles", kind: "fix.apply", state: StateApproved,
			votes:   []Vote{v("dave", Approve, time.Hour, "dba", "sre"), v("frank", Approve, time.Minute, "sre", "dba")},
			counted: [][]string{{"frank"}, {"dave"}}},
		{name: "requester cannot approve", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("alice", Approve, time.Minute, "dba"), v("bob", Approve, time.Minute, "sre")},
			counted: [][]string{{}, {"bob"}}, missing: "1 more approval from role:dba",
			ignored: map[string]string{"alice": "requester cannot approve their own action"}},
		{name: "requester rejection is ignored too", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("alice", Reject, time.Minute, "dba")},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"alice": "requester cannot reject"}},
		{name: "approval for another plan is void", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("carol", Approve, time.Minute, "dba"), stale},
			counted: [][]string{{"carol"}, {}}, missing: "1 more approval from role:sre",
			ignored: map[string]string{"bob": "approval was for a different plan (plan changed)"}},
		{name: "rejection for another plan is void", kind: "fix.apply", state: StatePending,
			votes:   []Vote{staleReject},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"bob": "rejection was for a different plan"}},
		{name: "approval older than expiry", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("carol", Approve, 4*time.Hour+time.Second, "dba"), v("bob", Approve, time.Minute, "sre")},
			counted: [][]string{{}, {"bob"}}, missing: "1 more approval from role:dba",
			ignored: map[string]string{"carol": "approval expired (older than 4h)"}},
		{name: "approval exactly as old as expiry still counts", kind: "fix.apply", state: StateApproved,
			votes:   []Vote{v("carol", Approve, 4*time.Hour, "dba"), v("bob", Approve, time.Minute, "sre")},
			counted: [][]string{{"carol"}, {"bob"}}},
		{name: "expiry in days", kind: "access.grant", state: StatePending,
			votes:   []Vote{v("carol", Approve, 8*24*time.Hour, "dba")},
			counted: [][]string{{}, {}}, missing: "2 more approvals from role:dba; 1 more from role:sre or user:erin",
			ignored: map[string]string{"carol": "approval expired (older than 7d)"}},
		{name: "expired rejection does not count", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("bob", Reject, 5*time.Hour, "sre")},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"bob": "rejection expired (older than 4h)"}},
		{name: "approver without an eligible role", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("erin", Approve, time.Minute, "auditor", "approver")},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"erin": "not eligible: needs role:dba or role:sre"}},
		{name: "rejection from someone not eligible does not count", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("erin", Reject, time.Minute, "viewer")},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"erin": "not eligible"}},
		{name: "duplicate approvals count once", kind: "sql.exec", state: StatePending,
			votes:   []Vote{v("bob", Approve, 2*time.Minute), v("bob", Approve, time.Minute)},
			counted: [][]string{{"bob"}}, missing: "1 more approval from user:bob or user:carol or user:dave",
			ignored: map[string]string{"bob": "counted once (already counted)"}},
		{name: "n of m", kind: "sql.exec", state: StateApproved,
			votes:   []Vote{v("dave", Approve, 2*time.Minute), v("bob", Approve, time.Minute), v("carol", Approve, 0)},
			counted: [][]string{{"dave", "bob"}}}, // carol was not needed
		{name: "n of m by user ignores roles", kind: "sql.exec", state: StatePending,
			votes:   []Vote{v("erin", Approve, time.Minute, "dba", "sre", "approver"), v("bob", Approve, time.Minute)},
			counted: [][]string{{"bob"}}, missing: "1 more approval from user:bob or user:carol or user:dave",
			ignored: map[string]string{"erin": "not eligible: needs user:bob or user:carol or user:dave"}},
		{name: "later rejection replaces an approval", kind: "fix.apply", state: StateRejected, rejections: 1,
			votes:   []Vote{v("carol", Approve, 2*time.Minute, "dba"), v("bob", Approve, time.Minute, "sre"), v("carol", Reject, 0, "dba")},
			counted: [][]string{{}, {"bob"}},
			ignored: map[string]string{"carol": "counted once"}},
		{name: "later approval replaces a rejection", kind: "fix.apply", state: StateApproved,
			votes:   []Vote{v("carol", Reject, 2*time.Minute, "dba"), v("carol", Approve, time.Minute, "dba"), v("bob", Approve, time.Minute, "sre")},
			counted: [][]string{{"carol"}, {"bob"}},
			ignored: map[string]string{"carol": "counted once"}},
		{name: "latest is by time, not by order", kind: "fix.apply", state: StateApproved,
			votes:   []Vote{v("carol", Approve, time.Minute, "dba"), v("carol", Reject, time.Hour, "dba"), v("bob", Approve, time.Minute, "sre")},
			counted: [][]string{{"carol"}, {"bob"}},
			ignored: map[string]string{"carol": "counted once"}},
		{name: "a void later vote does not replace a valid one", kind: "fix.apply", state: StateApproved,
			votes: []Vote{v("carol", Approve, time.Hour, "dba"), v("bob", Approve, 2*time.Minute, "sre"),
				{User: "carol", Roles: []string{"dba"}, Decision: Reject, PlanHash: "p0", At: t0}},
			counted: [][]string{{"carol"}, {"bob"}},
			ignored: map[string]string{"carol": "plan changed"}},
		{name: "rejection wins over approval", kind: "fix.apply", state: StateRejected, rejections: 1,
			votes:   []Vote{v("carol", Approve, time.Minute, "dba"), v("bob", Approve, time.Minute, "sre"), v("frank", Reject, 0, "sre")},
			counted: [][]string{{"carol"}, {"bob"}}},
		{name: "below the deny threshold", kind: "deploy.gate", state: StatePending, rejections: 1,
			votes:   []Vote{v("bob", Reject, time.Minute, "approver"), v("carol", Approve, time.Minute, "approver")},
			counted: [][]string{{"carol"}}, missing: "1 more approval from role:approver"},
		{name: "at the deny threshold", kind: "deploy.gate", state: StateRejected, rejections: 2,
			votes:   []Vote{v("bob", Reject, time.Minute, "approver"), v("carol", Reject, time.Minute, "approver")},
			counted: [][]string{{}}},
		{name: "auto-approve without votes", kind: "probe.silence", state: StateApproved, auto: true, counted: [][]string{}},
		{name: "auto-approve takes no votes", kind: "probe.silence", state: StateApproved, auto: true, counted: [][]string{},
			votes:   []Vote{v("bob", Reject, time.Minute, "sre", "approver")},
			ignored: map[string]string{"bob": "not eligible"}},
		{name: "unknown decision", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("carol", "abstain", time.Minute, "dba")},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"carol": `unknown decision "abstain"`}},
		{name: "vote without a user", kind: "fix.apply", state: StatePending,
			votes:   []Vote{v("", Approve, time.Minute, "dba")},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"": "no user"}},
		{name: "vote without a time is expired", kind: "fix.apply", state: StatePending,
			votes:   []Vote{{User: "carol", Roles: []string{"dba"}, Decision: Approve, PlanHash: "p1"}},
			counted: [][]string{{}, {}}, missing: "1 more approval from role:dba; 1 more from role:sre",
			ignored: map[string]string{"carol": "expired"}},
		{name: "mixed groups with a named user", kind: "access.grant", state: StateApproved,
			votes:   []Vote{v("erin", Approve, time.Minute, "viewer"), v("carol", Approve, time.Minute, "dba"), v("dave", Approve, time.Minute, "dba", "sre")},
			counted: [][]string{{"carol", "dave"}, {"erin"}}}, // same time: by name
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Proposal{Kind: tc.kind, Service: "shop", Requester: "alice", PlanHash: "p1"}
			d := e.Evaluate(p, tc.votes, t0)
			if d.State != tc.state || d.AutoApproved != tc.auto || d.Missing != tc.missing || d.Rejections != tc.rejections {
				t.Errorf("state %s auto %v missing %q rejections %d; want %s %v %q %d",
					d.State, d.AutoApproved, d.Missing, d.Rejections, tc.state, tc.auto, tc.missing, tc.rejections)
			}
			if d.Rule != e.Match(p).Name {
				t.Errorf("rule %s, want %s", d.Rule, e.Match(p).Name)
			}
			if len(d.Groups) != len(tc.counted) {
				t.Fatalf("groups %+v, want %d", d.Groups, len(tc.counted))
			}
			for i, g := range d.Groups {
				if !slices.Equal(g.Counted, tc.counted[i]) {
					t.Errorf("group %d (%v) counted %q, want %q", i, g.From, g.Counted, tc.counted[i])
				}
			}
			got := map[string]string{}
			for _, ig := range d.Ignored {
				got[ig.User] += ig.Reason + "|"
			}
			for user, want := range tc.ignored {
				if !strings.Contains(got[user], want) {
					t.Errorf("ignored[%s] = %q, want it to contain %q", user, got[user], want)
				}
			}
			for user := range got {
				if _, ok := tc.ignored[user]; !ok {
					t.Errorf("%s ignored unexpectedly: %s", user, got[user])
				}
			}
		})
	}
}

func TestPolicyEvaluateGroupsReportNeedAndFrom(t *testing.T) {
	t.Parallel()
	e := mustNew(t, evalPolicies())
	d := e.Evaluate(Proposal{Kind: "access.grant", PlanHash: "p1"}, nil, t0)
	want := []GroupStatus{{Need: 2, From: []string{"role:dba"}, Counted: []string{}}, {Need: 1, From: []string{"role:sre", "user:erin"}, Counted: []string{}}}
	if fmt.Sprint(d.Groups) != fmt.Sprint(want) || d.Rule != "mixed" || d.Ignored != nil {
		t.Fatalf("got %+v, want groups %+v", d, want)
	}
}

// TestAssignIsMaximum checks the matching against brute force on random
// instances: it must count as many approvals as the best assignment, so
// that the groups are satisfied whenever any assignment satisfies them.
func TestPolicyAssignIsMaximum(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	roles := []string{"a", "b", "c"}
	for iter := range 3000 {
		groups := make([]config.Requirement, 1+rng.IntN(3))
		for g := range groups {
			var from []string
			for _, r := range roles {
				if rng.IntN(2) == 0 {
					from = append(from, "role:"+r)
				}
			}
			if rng.IntN(3) == 0 {
				from = append(from, fmt.Sprintf("user:u%d", rng.IntN(6)))
			}
			if len(from) == 0 {
				from = []string{"role:a"}
			}
			groups[g] = req(1+rng.IntN(3), from...)
		}
		approvers := make([]Vote, rng.IntN(7))
		for a := range approvers {
			var rs []string
			for _, r := range roles {
				if rng.IntN(3) == 0 {
					rs = append(rs, r)
				}
			}
			approvers[a] = Vote{User: fmt.Sprintf("u%d", a), Roles: rs}
		}
		fill := make([]int, len(groups))
		counted := 0
		for a, g := range assign(groups, approvers) {
			if g < 0 {
				continue
			}
			counted++
			if !eligible(groups[g].From, approvers[a]) {
				t.Fatalf("iter %d: %s assigned to group %d it is not eligible for", iter, approvers[a].User, g)
			}
			fill[g]++
		}
		for g, n := range fill {
			if n > groups[g].Approvals {
				t.Fatalf("iter %d: group %d overfilled: %d > %d", iter, g, n, groups[g].Approvals)
			}
		}
		if best := bruteForce(groups, approvers, 0, make([]int, len(groups))); counted != best {
			t.Fatalf("iter %d: matching counts %d approvals, best is %d\ngroups %v\napprovers %v", iter, counted, best, groups, approvers)
		}
	}
}

// bruteForce returns the most approvals any assignment counts.
func bruteForce(groups []config.Requirement, approvers []Vote, a int, fill []int) int {
	if a == len(approvers) {
		return 0
	}
	best := bruteForce(groups, approvers, a+1, fill) // a not counted
	for g := range groups {
		if fill[g] < groups[g].Approvals && eligible(groups[g].From, approvers[a]) {
			fill[g]++
			best = max(best, 1+bruteForce(groups, approvers, a+1, fill))
			fill[g]--
		}
	}
	return best
}

func TestPolicyEvaluateIsOrderIndependent(t *testing.T) {
	t.Parallel()
	e := mustNew(t, evalPolicies())
	votes := []Vote{v("dave", Approve, time.Hour, "dba", "sre"), v("carol", Approve, 30*time.Minute, "dba"),
		v("bob", Reject, 10*time.Minute, "sre"), v("bob", Approve, time.Minute, "sre")}
	p := Proposal{Kind: "fix.apply", Requester: "alice", PlanHash: "p1"}
	want := e.Evaluate(p, votes, t0)
	if want.State != StateApproved {
		t.Fatalf("baseline %+v", want)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		shuffled := slices.Clone(votes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := e.Evaluate(p, shuffled, t0)
		if got.State != want.State || fmt.Sprint(got.Groups) != fmt.Sprint(want.Groups) || got.Rejections != want.Rejections {
			t.Fatalf("order changed the decision: %+v vs %+v", got, want)
		}
	}
}
