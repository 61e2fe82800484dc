package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

func TestOverviewWithoutScorecard(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, "GET", "/", "", "Cookie: "+cookieName+"="+b.viewer)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d\n%s", r.StatusCode, r.body)
	}
	for _, want := range []string{"<h1>Overview</h1>", "The readiness scorecard is not enabled on this server.", `href="/services/shop"`,
		`href="/services/billing"`, `aria-current="page">Overview`, `class="skip-link" href="#main"`, `id="main"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/ lacks %q", want)
		}
	}
	// The service page says the same instead of failing.
	r = b.do(t, "GET", "/services/shop", "", "Cookie: "+cookieName+"="+b.viewer)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "The readiness scorecard is not enabled") || !strings.Contains(r.body, "No drills yet.") {
		t.Fatalf("/services/shop: %d\n%s", r.StatusCode, r.body)
	}
}

// seedService records drills, check runs and grants of shop in the store,
// the way the drill, integrity and access packages write them.
func seedService(t testing.TB, st *store.Store, now time.Time) {
	t.Helper()
	ctx := context.Background()
	for i, d := range []struct {
		state    string
		rto, rpo float64
	}{{"passed", 600, 1800}, {"passed", 1500, 900}, {"failed", 0, 0}, {"passed", 2400, 600}} {
		at := now.Add(time.Duration(i-4) * 7 * 24 * time.Hour)
		r, err := st.StartDrillRun(ctx, store.DrillRunRow{Service: "shop", Drill: "nightly", Actor: "user:ada", State: store.DrillRunning, StartedAt: at}, at.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		fin := at.Add(time.Hour)
		r.State, r.FinishedAt = d.state, &fin
		if d.rto > 0 {
			r.RTOSeconds, r.RPOSeconds = &d.rto, &d.rpo
		} else {
			r.Error = "pg_restore: exit status 1\nmore detail"
		}
		if err := st.UpdateDrillRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	fin := now.Add(-time.Hour)
	if _, err := st.InsertBackupRun(ctx, store.BackupRun{Service: "shop", Backup: "nightly", BackupID: "20261127T010000Z", Method: "pg_dump",
		State: store.BackupSucceeded, Actor: "system:jobs", StartedAt: now.Add(-2 * time.Hour), FinishedAt: &fin, SizeBytes: 3 << 20}); err != nil {
		t.Fatal(err)
	}
	var runs []store.CheckRunRow
	for i, status := range []string{"pass", "pass", "fail", "pass", "warn"} {
		runs = append(runs, store.CheckRunRow{Service: "shop", Check: "orders-fk", Database: "main", Status: status, Violations: int64(i % 3),
			Query: "SELECT 1", Sample: "[]", Actor: "system:jobs", StartedAt: now.Add(time.Duration(i-5) * time.Hour)})
	}
	if _, err := st.InsertCheckRuns(ctx, runs); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		state string
		exp   time.Duration
	}{{access.StateActive, time.Hour}, {access.StateRevoked, -time.Hour}} {
		if _, err := st.InsertGrant(ctx, store.GrantRow{Service: "shop", Database: "main", Profile: "read-only", Engine: "postgres", Requester: "ada",
			Reason: "INC-7 " + g.state, RoleName: "stw_" + g.state, State: g.state, CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(g.exp)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOverviewAndServiceWithScorecard(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Services[0].Objectives.RTO, cfg.Services[0].Objectives.RPO = "30m", "1h"
	b := setup(t, setupOpts{scorecard: true, config: cfg})
	seedService(t, b.store, time.Now())
	cookie := "Cookie: " + cookieName + "=" + b.viewer

	r := b.do(t, "GET", "/", "", cookie)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d\n%s", r.StatusCode, r.body)
	}
	for _, want := range []string{"Readiness <span class=\"score", "<h2 id=\"attention-h\">Needs attention</h2>", `href="/services/shop#control-backups"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/ lacks %q\n%s", want, r.body)
		}
	}
	// Needs attention lists failures first, then warnings, then unknowns.
	_, table, _ := strings.Cut(r.body, `<table class="striped attention">`)
	table, _, _ = strings.Cut(table, "</table>")
	statuses := regexp.MustCompile(`<td><span class="status status-(\w+)">`).FindAllStringSubmatch(table, -1)
	if len(statuses) == 0 {
		t.Fatalf("no controls need attention:\n%s", table)
	}
	rank := map[string]int{"fail": 0, "warn": 1, "unknown": 2}
	for i := 1; i < len(statuses); i++ {
		if rank[statuses[i-1][1]] > rank[statuses[i][1]] {
			t.Fatalf("attention not ordered fail, warn, unknown: %v", statuses)
		}
	}

	start := time.Now()
	r = b.do(t, "GET", "/services/shop", "", cookie)
	t.Logf("service page rendered in %v", time.Since(start))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /services/shop: %d\n%s", r.StatusCode, r.body)
	}
	for _, want := range []string{
		`<tr id="control-backups">`, `<tr id="control-contacts">`, "ISO/IEC 27001:2022 A.8.13", // controls with references
		`<svg class="chart drill-chart"`, "Restore drills of shop: RTO and RPO over time", "RTO objective 30m", "4 drills from", // the chart
		`class="point failed"`, "pg_restore: exit status 1", // the failed drill, first line only
		`<td class="miss" title="above the objective">40m</td>`,           // a drill above the RTO objective
		`<svg class="sparkline"`, "orders-fk: last 5 runs, 2 not passing", // the check trend
		"INC-7 active", "INC-7 revoked", // grants, active and past
		`href="tel:&#43;41%2044%20000%2000%2000"`, "Hoster NOC", // contacts
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/services/shop lacks %q", want)
		}
	}
	if strings.Contains(r.body, "more detail") {
		t.Error("the drill error is not cut to its first line")
	}
	if !strings.Contains(r.body, "<code>20261127T010000Z</code>") || !strings.Contains(r.body, "3.0 MiB") {
		t.Error("the backup run is not listed")
	}
	// Evidence links to a drill land on its page; the failed one is the third.
	failed := regexp.MustCompile(`<td><a href="(/drills/\d+)">\d+</a></td>\s*<td>nightly</td>\s*<td class="nowrap">[^<]*</td>\s*<td><span class="state state-failed">`).FindStringSubmatch(r.body)
	if failed == nil {
		t.Fatalf("no link to the failed drill")
	}
	if dr := b.do(t, "GET", failed[1], "", cookie); dr.StatusCode != http.StatusOK || !strings.Contains(dr.body, "pg_restore: exit status 1\nmore detail") ||
		!strings.Contains(dr.body, "not measured") || !strings.Contains(dr.body, "(objective 30m)") {
		t.Errorf("GET %s: %d\n%s", failed[1], dr.StatusCode, dr.body)
	}
	if r := b.do(t, "GET", "/drills/9999", "", cookie); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /drills/9999: %d", r.StatusCode)
	}
	if r := b.do(t, "GET", "/drills/x", "", cookie); r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "drill id must be a positive integer") {
		t.Errorf("GET /drills/x: %d", r.StatusCode)
	}
	_, active, _ := strings.Cut(r.body, "<h3>Active</h3>")
	active, past, _ := strings.Cut(active, "<h3>Past</h3>")
	if !strings.Contains(active, "INC-7 active") || strings.Contains(active, "INC-7 revoked") || !strings.Contains(past, "INC-7 revoked") {
		t.Errorf("grants not split into active and past")
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	a := b.request(t, "release")
	path := fmt.Sprintf("/actions/%d/approve", a.ID)
	for name, tok := range map[string][]string{"missing": {""}, "wrong": {csrfToken(b.tokens["carol"])}, "garbage": {"x"}} {
		r := b.form(t, path, "bob", url.Values{"plan_hash": {a.PlanHash}, "csrf": tok})
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "the form&#39;s CSRF token is missing or wrong") ||
			!strings.Contains(r.body, "reload the page and submit it again") {
			t.Errorf("%s token: %d\n%s", name, r.StatusCode, r.body)
		}
	}
	if votes, err := b.store.ListApprovals(t.Context(), a.ID); err != nil || len(votes) != 0 {
		t.Fatalf("a refused post voted: %v %v", votes, err)
	}
	// htmx gets the refusal alone, to swap into the card.
	r := b.form(t, path, "bob", url.Values{"plan_hash": {a.PlanHash}, "csrf": {"x"}, "card": {"1"}}, "HX-Request: true")
	if r.StatusCode != http.StatusForbidden || strings.Contains(r.body, "<html") || !strings.Contains(r.body, "CSRF token is missing or wrong") {
		t.Errorf("htmx post with a wrong token: %d\n%s", r.StatusCode, r.body)
	}
	// The token in the header (htmx) counts like the field.
	r = b.form(t, path, "bob", url.Values{"plan_hash": {a.PlanHash}, "csrf": {""}}, csrfHeader+": "+csrfToken(b.tokens["bob"]))
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve with the header token: %d\n%s", r.StatusCode, r.body)
	}
	// Pages carry the viewer's token in their forms and for htmx.
	r = b.page(t, fmt.Sprintf("/actions/%d", a.ID), "carol")
	tok := csrfToken(b.tokens["carol"])
	for _, want := range []string{`<input type="hidden" name="csrf" value="` + tok + `">`, `<meta name="csrf-token" content="` + tok + `">`,
		`hx-headers:inherited='{"X-CSRF-Token": "` + tok + `"}'`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("action page lacks %q", want)
		}
	}
	// Every state-changing form of every page carries the token.
	for _, pg := range []struct{ path, user string }{{fmt.Sprintf("/actions/%d", a.ID), "carol"}, {"/approvals", "carol"}, {"/reviews", "carol"}, {"/", "carol"}} {
		assertFormsHaveCSRF(t, b.page(t, pg.path, pg.user).body, csrfToken(b.tokens[pg.user]), pg.path)
	}
	// A script with a bearer token has no ambient credential to abuse and
	// needs no CSRF token.
	r = b.form(t, path, "", url.Values{"plan_hash": {a.PlanHash}}, "Authorization: Bearer "+b.tokens["carol"])
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("bearer form post: %d\n%s", r.StatusCode, r.body)
	}
}

func TestApprovalsVoteWithoutReload(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	a := b.request(t, "release 1.2.3")
	card := fmt.Sprintf(`id="action-%d"`, a.ID)
	approve := fmt.Sprintf(`hx-post="/actions/%d/approve"`, a.ID)

	r := b.page(t, "/approvals", "bob")
	for _, want := range []string{card, approve, `hx-target="#action-` + fmt.Sprint(a.ID) + `"`, "2 more approvals from role:approver",
		"deploy shop version v1.2.3 (tier 1)", "risk-high", `name="csrf" value="` + csrfToken(b.tokens["bob"]) + `"`, `<label for="approve-comment-`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/approvals as bob lacks %q", want)
		}
	}
	// A viewer sees the card but no vote buttons, and why.
	r = b.page(t, "/approvals", "vic")
	if !strings.Contains(r.body, card) || strings.Contains(r.body, approve) || !strings.Contains(r.body, "You are not among those who may approve") {
		t.Errorf("/approvals as vic:\n%s", r.body)
	}
	// The requester neither.
	if r = b.page(t, "/approvals", "alice"); strings.Contains(r.body, approve) || !strings.Contains(r.body, "You requested this action") {
		t.Errorf("/approvals as alice:\n%s", r.body)
	}

	hx := "HX-Request: true"
	path := fmt.Sprintf("/actions/%d/approve", a.ID)
	r = b.form(t, path, "bob", url.Values{"plan_hash": {a.PlanHash}, "card": {"1"}, "comment": {"lgtm"}}, hx)
	if r.StatusCode != http.StatusOK || strings.Contains(r.body, "<html") || !strings.Contains(r.body, card) ||
		!strings.Contains(r.body, "Your approval was recorded.") || !strings.Contains(r.body, "1 more approval from role:approver") ||
		!strings.Contains(r.body, "You voted <span class=\"vote-approve\">approve</span>") {
		t.Fatalf("htmx approve: %d\n%s", r.StatusCode, r.body)
	}
	// A forged vote of the viewer is refused in the card, and not counted.
	r = b.form(t, path, "vic", url.Values{"plan_hash": {a.PlanHash}, "card": {"1"}, "comment": {"me too"}}, hx)
	if r.StatusCode != http.StatusForbidden || strings.Contains(r.body, "<html") || !strings.Contains(r.body, "not eligible") || !strings.Contains(r.body, `role="alert"`) {
		t.Fatalf("htmx approve as viewer: %d\n%s", r.StatusCode, r.body)
	}
	// Rejecting without a comment keeps the card, with the refusal.
	r = b.form(t, fmt.Sprintf("/actions/%d/reject", a.ID), "carol", url.Values{"plan_hash": {a.PlanHash}, "card": {"1"}}, hx)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "needs a comment") || !strings.Contains(r.body, approve) {
		t.Fatalf("htmx reject without comment: %d\n%s", r.StatusCode, r.body)
	}
	// carol's approval completes it: the card says approved, no more forms.
	r = b.form(t, path, "carol", url.Values{"plan_hash": {a.PlanHash}, "card": {"1"}}, hx)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, `state-approved`) || strings.Contains(r.body, approve) {
		t.Fatalf("second approval: %d\n%s", r.StatusCode, r.body)
	}
	votes, err := b.store.ListApprovals(t.Context(), a.ID)
	if err != nil || len(votes) != 2 || votes[0].User != "bob" || votes[0].Comment != "lgtm" || votes[0].Via != viaUI || votes[1].User != "carol" {
		t.Fatalf("votes %+v %v", votes, err)
	}
	got, err := b.store.GetAction(t.Context(), a.ID)
	if err != nil || got.State != "approved" {
		t.Fatalf("action after two approvals: %+v %v", got, err)
	}
}

func TestAuditFiltersAndVerify(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := t.Context()
	addEvents(t, b, 5) // targets service:s0..s4
	for _, tgt := range []string{"backup:shop/nightly", "probe:shop:home", "backup:billing/daily"} {
		if err := b.audit(ctx, "user:ada", "backup.run", tgt, "ok", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.store.InsertCheckpoint(ctx, store.Checkpoint{Size: 3, HeadHash: strings.Repeat("ab", 32),
		Note: "steward.test/audit\n3\nq6urq6ur\n\n— steward.test+1234abcd c2lnbmF0dXJl\n"}); err != nil {
		t.Fatal(err)
	}
	cookie := "Cookie: " + cookieName + "=" + b.auditor
	rows := regexp.MustCompile(`<td>(\d+)</td>\s*<td class="nowrap">`)

	r := b.do(t, "GET", "/audit?service=shop", "", cookie)
	if got := rows.FindAllStringSubmatch(r.body, -1); r.StatusCode != 200 || len(got) != 2 || !strings.Contains(r.body, "<td>backup:shop/nightly</td>") ||
		!strings.Contains(r.body, "<td>probe:shop:home</td>") || strings.Contains(r.body, "billing/daily") {
		t.Fatalf("service filter: %d rows %v\n%s", r.StatusCode, got, r.body)
	}
	for _, want := range []string{`<option value="shop" selected>shop</option>`, `hx-select="#audit-results"`, `hx-push-url="true"`,
		"Filtered by service <strong>shop</strong>", `<label for="f-actor">`, `href="/audit" role="button"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("filtered page lacks %q", want)
		}
	}
	// The time range: everything was written in the last minutes.
	today := time.Now().UTC().Format("2006-01-02")
	r = b.do(t, "GET", "/audit?since="+today+"&until="+today+"&actor=user:ada", "", cookie)
	if got := rows.FindAllStringSubmatch(r.body, -1); len(got) != 3 {
		t.Errorf("today's events of ada: %v", got)
	}
	r = b.do(t, "GET", "/audit?until=2000-01-01", "", cookie)
	if got := rows.FindAllStringSubmatch(r.body, -1); len(got) != 0 || !strings.Contains(r.body, "No events match the filter.") {
		t.Errorf("events before 2000: %v", got)
	}
	r = b.do(t, "GET", "/audit?seq=2", "", cookie)
	if got := rows.FindAllStringSubmatch(r.body, -1); len(got) != 1 || got[0][1] != "2" {
		t.Errorf("seq=2: %v", got)
	}
	// A bad filter is explained above the form, not an error page.
	r = b.do(t, "GET", "/audit?since=yesterday", "", cookie)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "since must be a date like 2026-11-27") || !strings.Contains(r.body, `<form method="get" action="/audit"`) {
		t.Errorf("bad since: %d\n%s", r.StatusCode, r.body)
	}
	r = b.do(t, "GET", "/audit?since=2026-11-02&until=2026-11-01", "", cookie)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "must be before until") {
		t.Errorf("inverted range: %d", r.StatusCode)
	}

	// The integrity panel: this test's chain is not Steward's canonical
	// encoding, so it does not verify, and says where; the checkpoint is
	// shown with its signer.
	r = b.do(t, "GET", "/audit", "", cookie)
	for _, want := range []string{"does not verify", "first bad event #1", "Last checkpoint", "3 events", "signed by <code>steward.test&#43;1234abcd</code>"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("integrity panel lacks %q", want)
		}
	}
}

func TestNoteSigners(t *testing.T) {
	t.Parallel()
	for note, want := range map[string]string{
		"o\n1\nh\n\n— a+1 c2ln\n— b+2 c2ln\n": "a+1,b+2",
		"o\n1\nh\n":                    "",
		"o\n1\nh\n\nnot a signature\n": "",
	} {
		if got := strings.Join(noteSigners(note), ","); got != want {
			t.Errorf("noteSigners(%q) = %q, want %q", note, got, want)
		}
	}
}

func TestScorecardCachedBriefly(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{scorecard: true})
	evaluate := b.srv.score
	calls := 0
	b.srv.score = func(ctx context.Context, service string) (*readiness.Scorecard, error) {
		calls++
		return evaluate(ctx, service)
	}
	cookie := "Cookie: " + cookieName + "=" + b.viewer
	for range 3 {
		if r := b.do(t, "GET", "/", "", cookie); r.StatusCode != http.StatusOK {
			t.Fatalf("GET /: %d", r.StatusCode)
		}
	}
	if calls != 1 {
		t.Fatalf("three overviews evaluated the scorecard %d times, want once", calls)
	}
	// Past the TTL it is evaluated again.
	b.srv.now = func() time.Time { return time.Now().Add(scoreTTL) }
	b.do(t, "GET", "/", "", cookie)
	if calls != 2 {
		t.Fatalf("after %v: %d evaluations, want 2", scoreTTL, calls)
	}
	// A failing evaluation is not an error page, and is not kept.
	b.srv.score = func(context.Context, string) (*readiness.Scorecard, error) { return nil, store.ErrUnreachable }
	b.srv.scores = scoreCache{}
	r := b.do(t, "GET", "/services/shop", "", cookie)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "The scorecard could not be evaluated: the state store is unavailable.") {
		t.Fatalf("failing scorecard: %d\n%s", r.StatusCode, r.body)
	}
}

// assertFormsHaveCSRF checks that every POST form of a page (but the login
// form, which has no cookie yet) sends the CSRF token.
func assertFormsHaveCSRF(t *testing.T, body, tok, page string) {
	t.Helper()
	forms := regexp.MustCompile(`(?s)<form method="post" action="([^"]+)".*?</form>`).FindAllStringSubmatch(body, -1)
	if len(forms) == 0 {
		t.Errorf("%s has no post form", page)
	}
	for _, f := range forms {
		if f[1] != "/login" && !strings.Contains(f[0], `<input type="hidden" name="csrf" value="`+tok+`">`) {
			t.Errorf("%s: the form posting to %s has no CSRF token:\n%s", page, f[1], f[0])
		}
	}
}
