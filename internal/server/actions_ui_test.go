package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/action"
)

func TestApprovalPages(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	a := b.request(t, `release <script>alert(1)</script>`)
	page := fmt.Sprintf("/actions/%d", a.ID)

	r := b.page(t, "/approvals", "bob")
	for _, want := range []string{"<h1>Approvals</h1>", `href="` + page + `"`, "deploy.gate", "deploy shop version v1.2.3 (tier 1)",
		"risk-high", "alice", "2 more approvals from role:approver", `aria-current="page">Approvals`, "&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/approvals lacks %q", want)
		}
	}
	if r.StatusCode != http.StatusOK || strings.Contains(r.body, "<script>alert") {
		t.Fatalf("/approvals: %d, unescaped reason?\n%s", r.StatusCode, r.body)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}

	r = b.page(t, page, "bob")
	for _, want := range []string{a.PlanHash, "pending_approval", "deploy shop version v1.2.3 (tier 1)",
		"&#34;version&#34;: &#34;v1.2.3&#34;", // the plan's details, indented JSON
		`action="` + page + `/approve"`, `action="` + page + `/reject"`, `name="plan_hash" value="` + a.PlanHash + `"`, "No votes yet."} {
		if !strings.Contains(r.body, want) {
			t.Errorf("%s lacks %q", page, want)
		}
	}
	// The requester sees no vote forms, and why.
	r = b.page(t, page, "alice")
	if strings.Contains(r.body, page+"/approve") || !strings.Contains(r.body, "You requested this action") {
		t.Errorf("requester's page:\n%s", r.body)
	}

	// bob approves with the form; the page says so and shows the vote.
	r = b.form(t, page+"/approve", "bob", url.Values{"comment": {"looks <b>good</b>"}, "plan_hash": {a.PlanHash}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != page+"?done=approve" {
		t.Fatalf("approve form: %d %q\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	r = b.page(t, r.Header.Get("Location"), "bob")
	for _, want := range []string{"Your approval was recorded.", "looks &lt;b&gt;good&lt;/b&gt;", "<td>ui</td>", "1 more approval from role:approver", "counted: bob"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("after approving, the page lacks %q", want)
		}
	}

	// alice's own approval is refused on the page, with the comment kept.
	r = b.form(t, page+"/approve", "alice", url.Values{"comment": {"ship it"}, "plan_hash": {a.PlanHash}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "requester cannot approve their own action") ||
		!strings.Contains(r.body, `role="alert"`) || !strings.Contains(r.body, "<h1>#") {
		t.Fatalf("self-approval: %d\n%s", r.StatusCode, r.body)
	}
	// A viewer is not eligible.
	r = b.form(t, page+"/approve", "vic", url.Values{"comment": {"me too"}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "not eligible") || !strings.Contains(r.body, "You are not among those who may approve") ||
		strings.Contains(r.body, page+"/approve") {
		t.Fatalf("viewer approval: %d\n%s", r.StatusCode, r.body)
	}
	// Rejecting needs a comment.
	r = b.form(t, page+"/reject", "carol", url.Values{"comment": {""}})
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "needs a comment") {
		t.Fatalf("reject without comment: %d\n%s", r.StatusCode, r.body)
	}
	// A cross-site post is refused before it reaches the pipeline.
	r = b.form(t, page+"/approve", "carol", url.Values{"plan_hash": {a.PlanHash}}, "Origin: https://evil.example", "Sec-Fetch-Site: cross-site")
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site approve: %d", r.StatusCode)
	}
	// Without a cookie the browser logs in and comes back to the page.
	r = b.form(t, page+"/approve", "", url.Values{})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next="+url.QueryEscape(page) {
		t.Fatalf("approve without cookie: %d %q", r.StatusCode, r.Header.Get("Location"))
	}

	// carol's approval completes it; the votes show who and via what.
	r = b.form(t, page+"/approve", "carol", url.Values{"plan_hash": {a.PlanHash}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("carol: %d\n%s", r.StatusCode, r.body)
	}
	got, err := b.actions.Get(t.Context(), a.ID)
	if err != nil || got.State != action.Approved {
		t.Fatalf("after the forms: %v %v", got, err)
	}
	r = b.page(t, page, "vic")
	if !strings.Contains(r.body, "state-approved") || strings.Contains(r.body, page+"/approve") || !strings.Contains(r.body, "alice") {
		t.Errorf("approved page:\n%s", r.body)
	}
	// Every refused form vote was audited by the pipeline as denied.
	for _, actor := range []string{"user:alice", "user:vic"} {
		if n := b.countAudit(t, actor, "action.approve", "denied"); n != 1 {
			t.Errorf("%s: %d denied approvals audited", actor, n)
		}
	}
	if n := b.countAudit(t, "user:carol", "action.approve", "ok"); n != 1 {
		t.Errorf("carol: %d approvals audited", n)
	}

	if r := b.page(t, "/approvals", "bob"); !strings.Contains(r.body, "Nothing is waiting for approval.") {
		t.Errorf("/approvals after approval:\n%s", r.body)
	}
	if r := b.page(t, "/actions/999", "bob"); r.StatusCode != http.StatusNotFound {
		t.Errorf("/actions/999: %d", r.StatusCode)
	}
	if r := b.form(t, "/actions/999/approve", "bob", url.Values{}); r.StatusCode != http.StatusNotFound {
		t.Errorf("approve /actions/999: %d", r.StatusCode)
	}
}

func TestActionsAndReviewsPages(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	b.request(t, "an ordinary release")
	var bg actionReply
	b.callJSON(t, "POST", "/api/v1/actions/break-glass", "frank", gateBody("hotfix-7", "INC-42: checkout down"), http.StatusCreated, &bg)

	r := b.page(t, "/actions", "vic")
	for _, want := range []string{"<h1>Actions</h1>", `class="breakglass"`, "break-glass</span>", "INC-42: checkout down", "an ordinary release", "state-succeeded", "state-pending_approval"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/actions lacks %q", want)
		}
	}
	r = b.page(t, "/actions?state=pending_approval", "vic")
	if strings.Contains(r.body, "INC-42") || !strings.Contains(r.body, `value="pending_approval" selected`) {
		t.Errorf("filtered /actions:\n%s", r.body)
	}
	if r := b.page(t, "/actions?state=bogus", "vic"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("/actions?state=bogus: %d", r.StatusCode)
	}

	review := fmt.Sprintf("/reviews/%d/complete", bg.Review.ID)
	r = b.page(t, "/reviews", "bob")
	for _, want := range []string{"Review " + fmt.Sprint(bg.Review.ID), "frank", "0 of 2", `action="` + review + `"`, "INC-42: checkout down"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/reviews lacks %q", want)
		}
	}
	// The person who broke the glass gets no form, and a post is refused.
	if r := b.page(t, "/reviews", "frank"); strings.Contains(r.body, `action="`+review+`"`) || !strings.Contains(r.body, "You broke the glass") {
		t.Errorf("breaker's /reviews:\n%s", r.body)
	}
	r = b.form(t, review, "frank", url.Values{"notes": {"fine by me"}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "cannot review it") || !strings.Contains(r.body, `role="alert"`) {
		t.Fatalf("self-review form: %d\n%s", r.StatusCode, r.body)
	}

	// Notes are required.
	r = b.form(t, review, "carol", url.Values{"notes": {"   "}})
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "notes must say") {
		t.Fatalf("review without notes: %d\n%s", r.StatusCode, r.body)
	}
	r = b.form(t, review, "bob", url.Values{"notes": {"checked the deploy log"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/reviews?done=complete" {
		t.Fatalf("review form: %d %q\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	r = b.page(t, "/reviews?done=complete", "bob")
	if !strings.Contains(r.body, "Your review signoff was recorded.") || !strings.Contains(r.body, "1 of 2") || !strings.Contains(r.body, "You signed this review.") {
		t.Errorf("after signing:\n%s", r.body)
	}
	if r := b.form(t, review, "vic", url.Values{"notes": {"looked at the incident"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("vic signs: %d\n%s", r.StatusCode, r.body)
	}
	r = b.page(t, "/reviews", "carol")
	if !strings.Contains(r.body, "No open reviews.") || !strings.Contains(r.body, "Recently completed") {
		t.Errorf("after completion:\n%s", r.body)
	}
	// Flash texts come from a fixed list, never from the URL.
	if r := b.page(t, "/reviews?done=<b>hacked</b>", "carol"); strings.Contains(r.body, "hacked") {
		t.Error("flash text taken from the URL")
	}
}
