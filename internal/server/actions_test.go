package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/testenv"
)

// TestActionAPIApproveExecute is the approval flow end to end over HTTP:
// alice requests a deploy gate needing two approvers, her own approval and
// a viewer's are refused, bob and carol approve, and it executes.
func TestActionAPIApproveExecute(t *testing.T) {
	t.Parallel()
	for _, drv := range []struct {
		name string
		url  func(*testing.T) string
	}{{"sqlite", func(*testing.T) string { return "" }}, {"postgres", func(t *testing.T) string { return testenv.PostgresURL(t) }}} {
		t.Run(drv.name, func(t *testing.T) {
			t.Parallel()
			b := setupActions(t, drv.url(t))

			var created actionReply
			r := b.callJSON(t, "POST", "/api/v1/actions", "alice", gateBody("v1.2.3", "release 1.2.3"), http.StatusCreated, &created)
			a := created.Action
			if a.State != action.PendingApproval || a.Rule != "deploys" || a.Risk != action.RiskHigh || a.Requester != "alice" || a.PlanHash == "" {
				t.Fatalf("created: %+v", a)
			}
			if loc := r.Header.Get("Location"); loc != fmt.Sprintf("/api/v1/actions/%d", a.ID) {
				t.Errorf("Location %q", loc)
			}
			var d policy.Decision
			mustJSON(t, string(created.Decision), &d)
			if d.State != "pending" || d.Missing != "2 more approvals from role:approver" {
				t.Fatalf("decision: %+v", d)
			}
			path := fmt.Sprintf("/api/v1/actions/%d", a.ID)

			// Executing before approval is refused.
			var e errorBody
			b.callJSON(t, "POST", path+"/execute", "alice", "", http.StatusConflict, &e)
			if !strings.Contains(e.Error, "action is not approved") {
				t.Errorf("early execute: %+v", e)
			}

			// The requester cannot approve.
			e = errorBody{}
			b.callJSON(t, "POST", path+"/approve", "alice", `{"comment":"mine"}`, http.StatusForbidden, &e)
			if !strings.Contains(e.Error, "requester cannot approve their own action") || !strings.Contains(e.Error, "alice requested action") || e.Hint == "" {
				t.Errorf("self-approval: %+v", e)
			}
			// Nor can a viewer.
			e = errorBody{}
			b.callJSON(t, "POST", path+"/approve", "vic", "", http.StatusForbidden, &e)
			if !strings.Contains(e.Error, "not eligible") || !strings.Contains(e.Error, "role:approver") {
				t.Errorf("viewer approval: %+v", e)
			}

			var voted actionReply
			b.callJSON(t, "POST", path+"/approve", "bob", fmt.Sprintf(`{"comment":"lgtm","plan_hash":%q}`, a.PlanHash), http.StatusOK, &voted)
			mustJSON(t, string(voted.Decision), &d)
			if voted.Action.State != action.PendingApproval || d.Missing != "1 more approval from role:approver" {
				t.Fatalf("after bob: %s, %+v", voted.Action.State, d)
			}
			// A vote pinned to another plan is refused.
			b.callJSON(t, "POST", path+"/approve", "carol", `{"plan_hash":"0123456789abcdef"}`, http.StatusConflict, &e)
			b.callJSON(t, "POST", path+"/approve", "carol", "", http.StatusOK, &voted)
			if voted.Action.State != action.Approved {
				t.Fatalf("after carol: %s", voted.Action.State)
			}
			// Decided: further votes conflict.
			b.callJSON(t, "POST", path+"/approve", "bob", "", http.StatusConflict, &e)
			if !strings.Contains(e.Error, "no longer pending") {
				t.Errorf("late vote: %+v", e)
			}

			// A viewer cannot execute.
			b.callJSON(t, "POST", path+"/execute", "vic", "", http.StatusForbidden, nil)
			var ran actionReply
			b.callJSON(t, "POST", path+"/execute", "alice", "", http.StatusOK, &ran)
			if ran.Action.State != action.Succeeded || ran.Action.Result == nil {
				t.Fatalf("execute: %+v", ran.Action)
			}

			var shown actionReply
			b.callJSON(t, "GET", path, "vic", "", http.StatusOK, &shown)
			if shown.Action.State != action.Succeeded || len(shown.Approvals) != 2 {
				t.Fatalf("show: %s, %d votes", shown.Action.State, len(shown.Approvals))
			}
			for _, v := range shown.Approvals {
				if v.Via != viaAPI || v.Decision != "approve" || v.PlanHash != a.PlanHash {
					t.Errorf("vote %+v", v)
				}
			}

			var list struct{ Actions []action.Action }
			b.callJSON(t, "GET", "/api/v1/actions?state=succeeded&service=shop&kind=deploy.gate&limit=5", "vic", "", http.StatusOK, &list)
			if len(list.Actions) != 1 || list.Actions[0].ID != a.ID {
				t.Fatalf("list: %+v", list)
			}
			b.callJSON(t, "GET", "/api/v1/actions?state=pending_approval", "vic", "", http.StatusOK, &list)
			if len(list.Actions) != 0 {
				t.Fatalf("pending list: %+v", list)
			}

			// Audited once each, by the pipeline, with the actor; refusals too.
			for _, c := range []struct {
				actor, act, outcome string
				n                   int
			}{
				{"user:alice", "action.plan", "ok", 1},
				{"user:bob", "action.approve", "ok", 1},
				{"user:carol", "action.approve", "ok", 1},
				{"user:carol", "action.approve", "denied", 1}, // the wrong plan hash
				{"user:carol", "action.approved", "ok", 1},
				{"user:alice", "action.approve", "denied", 1},
				{"user:vic", "action.approve", "denied", 1},
				{"user:alice", "action.execute", "ok", 1},
				{"user:alice", "action.succeeded", "ok", 1},
			} {
				if n := b.countAudit(t, c.actor, c.act, c.outcome); n != c.n {
					t.Errorf("audit %s %s %s: %d events, want %d", c.actor, c.act, c.outcome, n, c.n)
				}
			}
		})
	}
}

func TestActionAPIErrors(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	a := b.request(t, "release")
	path := fmt.Sprintf("/api/v1/actions/%d", a.ID)

	for _, c := range []struct {
		name, method, path, user, body string
		status                         int
		want                           string
	}{
		{"bad JSON", "POST", "/api/v1/actions", "alice", `{"kind":`, 400, "not a valid JSON object"},
		{"empty body", "POST", "/api/v1/actions", "alice", "", 400, "body is empty"},
		{"unknown field", "POST", "/api/v1/actions", "alice", `{"kind":"deploy.gate","reason":"x","servise":"shop"}`, 400, `unknown field "servise"`},
		{"trailing data", "POST", path + "/approve", "bob", `{} {}`, 400, "after its JSON object"},
		{"no reason", "POST", "/api/v1/actions", "alice", gateBody("v1", " "), 400, "a reason is required"},
		{"unknown kind", "POST", "/api/v1/actions", "alice", `{"kind":"nope","service":"shop","reason":"x"}`, 400, "unknown action kind"},
		{"unknown service", "POST", "/api/v1/actions", "alice", `{"kind":"deploy.gate","service":"nope","reason":"x","params":{"version":"v1"}}`, 400, "unknown service"},
		{"bad params", "POST", "/api/v1/actions", "alice", gateBody("not a version!", "x"), 400, "invalid action parameters"},
		{"viewer requests", "POST", "/api/v1/actions", "vic", gateBody("v1", "x"), 403, `"operate" permission`},
		{"no token", "POST", "/api/v1/actions", "", gateBody("v1", "x"), 401, "no API token"},
		{"unknown id", "GET", "/api/v1/actions/999", "vic", "", 404, "action 999"},
		{"vote on unknown id", "POST", "/api/v1/actions/999/approve", "bob", "", 404, "action 999"},
		{"bad id", "GET", "/api/v1/actions/abc", "vic", "", 400, "positive integer"},
		{"bad state", "GET", "/api/v1/actions?state=done", "vic", "", 400, "unknown state"},
		{"bad limit", "GET", "/api/v1/actions?limit=0", "vic", "", 400, "limit"},
		{"reject without comment", "POST", path + "/reject", "bob", `{"comment":""}`, 400, "needs a comment"},
		{"cancel by someone else", "POST", path + "/cancel", "bob", `{"reason":"no"}`, 403, "only the requester"},
		{"replan of unknown", "POST", "/api/v1/actions/999/replan", "alice", "", 404, "action 999"},
		{"break-glass without permission", "POST", "/api/v1/actions/break-glass", "alice", gateBody("v1", "x"), 403, "break_glass permission"},
		{"bad review state", "GET", "/api/v1/reviews?state=late", "vic", "", 400, "unknown review state"},
		{"complete unknown review", "POST", "/api/v1/reviews/42/complete", "bob", `{"notes":"ok"}`, 404, "review 42"},
		{"huge body", "POST", "/api/v1/actions", "alice", `{"reason":"` + strings.Repeat("x", maxBodyBytes) + `"}`, 413, "too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e errorBody
			b.callJSON(t, c.method, c.path, c.user, c.body, c.status, &e)
			if !strings.Contains(e.Error, c.want) {
				t.Errorf("error %q, want it to contain %q (hint %q)", e.Error, c.want, e.Hint)
			}
		})
	}
}

func TestActionAPIRejectCancelReplan(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	rejected := b.request(t, "to be rejected")
	var out actionReply
	b.callJSON(t, "POST", fmt.Sprintf("/api/v1/actions/%d/reject", rejected.ID), "bob", `{"comment":"not during the sale"}`, http.StatusOK, &out)
	if out.Action.State != action.Rejected {
		t.Fatalf("reject: %s", out.Action.State)
	}
	var e errorBody
	b.callJSON(t, "POST", fmt.Sprintf("/api/v1/actions/%d/execute", rejected.ID), "alice", "", http.StatusConflict, &e)

	cancelled := b.request(t, "to be cancelled")
	b.callJSON(t, "POST", fmt.Sprintf("/api/v1/actions/%d/replan", cancelled.ID), "alice", "", http.StatusOK, &out)
	if out.Changed || out.Action.PlanHash != cancelled.PlanHash {
		t.Fatalf("replan of an unchanged plan: changed %v", out.Changed)
	}
	b.callJSON(t, "POST", fmt.Sprintf("/api/v1/actions/%d/cancel", cancelled.ID), "alice", `{"reason":"wrong version"}`, http.StatusOK, &out)
	if out.Action.State != action.Cancelled {
		t.Fatalf("cancel: %s", out.Action.State)
	}
	b.callJSON(t, "POST", fmt.Sprintf("/api/v1/actions/%d/cancel", cancelled.ID), "alice", "", http.StatusConflict, &e)
	if !strings.Contains(e.Error, "cannot become cancelled") {
		t.Errorf("second cancel: %+v", e)
	}
	if n := b.countAudit(t, "user:alice", "action.cancel", "ok"); n != 1 {
		t.Errorf("%d action.cancel events", n)
	}
}

func TestBreakGlassAndReviewsAPI(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	var out actionReply
	r := b.callJSON(t, "POST", "/api/v1/actions/break-glass", "frank", gateBody("hotfix-7", "INC-42: checkout down"), http.StatusCreated, &out)
	if !out.Action.BreakGlass || out.Action.State != action.Succeeded || out.Review.ID == 0 || out.Review.State != action.ReviewOpen ||
		out.Review.Required != 2 || out.Review.Breaker != "frank" || out.Review.Overdue || r.Header.Get("Location") == "" {
		t.Fatalf("break-glass: %+v", out)
	}
	var list struct{ Reviews []reviewJSON }
	b.callJSON(t, "GET", "/api/v1/reviews?state=open", "vic", "", http.StatusOK, &list)
	if len(list.Reviews) != 1 || list.Reviews[0].ActionID != out.Action.ID || list.Reviews[0].Signoffs == nil {
		t.Fatalf("reviews: %+v", list)
	}
	path := fmt.Sprintf("/api/v1/reviews/%d/complete", out.Review.ID)
	var e errorBody
	b.callJSON(t, "POST", path, "frank", `{"notes":"all fine"}`, http.StatusForbidden, &e)
	if !strings.Contains(e.Error, "cannot review it") {
		t.Errorf("self-review: %+v", e)
	}
	b.callJSON(t, "POST", path, "bob", `{"notes":""}`, http.StatusBadRequest, &e)
	b.callJSON(t, "POST", path, "bob", `{"notes":"checked the deploy log"}`, http.StatusOK, &out)
	if out.Review.State != action.ReviewOpen || len(out.Review.Signoffs) != 1 {
		t.Fatalf("after bob: %+v", out.Review)
	}
	b.callJSON(t, "POST", path, "bob", `{"notes":"again"}`, http.StatusConflict, &e)
	b.callJSON(t, "POST", path, "vic", `{"notes":"looked at the incident"}`, http.StatusOK, &out)
	if out.Review.State != action.ReviewCompleted || out.Review.CompletedAt == nil {
		t.Fatalf("after vic: %+v", out.Review)
	}
	b.callJSON(t, "POST", path, "carol", `{"notes":"late"}`, http.StatusConflict, &e)
	if !strings.Contains(e.Error, "already completed") {
		t.Errorf("completed review: %+v", e)
	}
	b.callJSON(t, "GET", "/api/v1/reviews?state=open", "vic", "", http.StatusOK, &list)
	if len(list.Reviews) != 0 {
		t.Fatalf("open reviews left: %+v", list)
	}
}

func TestActionsDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, path := range []string{"/api/v1/actions", "/api/v1/reviews", "/api/v1/actions/1"} {
		r := b.getJSON(t, path, b.viewer, http.StatusServiceUnavailable, nil)
		var e errorBody
		mustJSON(t, r.body, &e)
		if e.Error != "actions are not enabled" || e.Hint == "" {
			t.Errorf("GET %s: %+v", path, e)
		}
	}
	r := b.do(t, "GET", "/approvals", "", "Cookie: "+cookieName+"="+b.viewer)
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "actions are not enabled") {
		t.Errorf("/approvals: %d\n%s", r.StatusCode, r.body)
	}
	r = b.do(t, "GET", "/services", "", "Cookie: "+cookieName+"="+b.viewer)
	if strings.Contains(r.body, `href="/approvals"`) {
		t.Error("nav links to the approval pages without a pipeline")
	}
}
