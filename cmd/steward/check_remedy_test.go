package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/integrity"
	"github.com/stewardhq/steward/internal/testenv"
)

// remedyConfig has two checks with remedies: amounts (a list parameter:
// one request for every violation) and status (a scalar parameter: one
// request per row). fix.apply needs two approvers.
const remedyConfig = `steward:
  allow_inline_secrets: true
  data_dir: DIR/data
  store: "STORE"
services:
  - name: shop
    databases:
      - {name: main, engine: ENGINE, url: "file:URLFILE"}
    checks:
      - {name: amounts, database: main, type: row_predicate, table: orders, predicate: "amount >= 0", show: [email], mask: [email], remedy: zero-amounts}
      - {name: status, database: main, type: accepted_values, table: orders, column: status, values: [paid, pending], remedy: reset-status, remedy_params: {order_id: id}}
      - {name: emails, database: main, type: not_null, table: orders, column: email}
    fixes:
      - name: zero-amounts
        database: main
        params: {id: "[]int"}
        select: SELECT id, amount FROM orders WHERE id IN :id AND amount < 0
        apply: UPDATE orders SET amount = 0 WHERE id IN :id AND amount < 0
        max_rows: 10
      - name: reset-status
        database: main
        params: {order_id: int}
        select: SELECT id, status FROM orders WHERE id = :order_id AND status NOT IN ('paid', 'pending')
        apply: UPDATE orders SET status = 'pending' WHERE id = :order_id AND status NOT IN ('paid', 'pending')
policies:
  approvals:
    - {name: fixes, match: {action: [fix.apply]}, require: [{approvals: 2, from: ["role:approver"]}]}
`

type remedyEnv struct {
	cfg    string
	db     *sql.DB
	tokens map[string]string
}

// setupRemedy seeds an application database on engine at url with three
// negative amounts (2, 4, 5), two unknown statuses (3, 6) and a NULL email
// (4), and writes a config whose store is at storeURL.
func setupRemedy(t *testing.T, engine, url, storeURL string) *remedyEnv {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := dbx.Open(ctx, engine, url, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, status VARCHAR(20), amount NUMERIC(10,2), email VARCHAR(100))",
		"INSERT INTO orders VALUES (1, 'paid', 10, 'a@example.com'), (2, 'paid', -1, 'b@example.com'), (3, 'bogus', 5, 'c@example.com'), " +
			"(4, 'pending', -2.5, NULL), (5, 'paid', -3, 'e@example.com'), (6, 'lost', 7, 'f@example.com')",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	urlFile := filepath.Join(dir, "app-url")
	if err := os.WriteFile(urlFile, []byte(url), 0o600); err != nil {
		t.Fatal(err)
	}
	if storeURL == "" {
		storeURL = "sqlite://" + filepath.Join(dir, "steward.db")
	}
	e := &remedyEnv{cfg: filepath.Join(dir, "steward.yaml"), db: db, tokens: map[string]string{}}
	y := strings.NewReplacer("DIR", dir, "STORE", storeURL, "ENGINE", engine, "URLFILE", urlFile).Replace(remedyConfig)
	if err := os.WriteFile(e.cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"alice", "operator"}, {"bob", "approver"}, {"carol", "approver"}} {
		r := steward(t, "-c", e.cfg, "user", "add", u.name, "--role", u.role, "-o", "json")
		var res userAddResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("user add %s: %+v", u.name, r)
		}
		e.tokens[u.name] = res.Token
	}
	return e
}

func (e *remedyEnv) as(t *testing.T, user string, args ...string) result {
	t.Helper()
	return steward(t, append([]string{"-c", e.cfg, "--token", e.tokens[user]}, args...)...)
}

func (e *remedyEnv) propose(t *testing.T, args ...string) proposeFixResult {
	t.Helper()
	r := e.as(t, "alice", append([]string{"check", "propose-fix"}, append(args, "-o", "json")...)...)
	var res proposeFixResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
		t.Fatalf("propose-fix %v: %+v", args, r)
	}
	return res
}

// approveAndApply approves action id as bob and carol and applies it as
// alice.
func (e *remedyEnv) approveAndApply(t *testing.T, id int64) {
	t.Helper()
	if r := e.as(t, "bob", "approve", itoa(id)); r.code != 0 {
		t.Fatalf("bob approves %d: %+v", id, r)
	}
	if r := e.as(t, "alice", "fix", "apply", itoa(id)); r.code == 0 {
		t.Fatalf("applied %d with one approval of two: %+v", id, r)
	}
	if r := e.as(t, "carol", "approve", itoa(id)); r.code != 0 {
		t.Fatalf("carol approves %d: %+v", id, r)
	}
	if r := e.as(t, "alice", "fix", "apply", itoa(id)); r.code != 0 || !strings.Contains(r.stdout, "SUCCEEDED") {
		t.Fatalf("apply %d: %+v", id, r)
	}
}

func (e *remedyEnv) history(t *testing.T, check string) []integrity.Result {
	t.Helper()
	r := e.as(t, "alice", "check", "history", "shop/"+check, "-o", "json")
	var runs []integrity.Result
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &runs) != nil || len(runs) == 0 {
		t.Fatalf("history %s: %+v", check, r)
	}
	return runs
}

func TestCheckProposeFixSQLite(t *testing.T) {
	t.Parallel()
	testProposeFix(t, setupRemedy(t, dbx.SQLite, filepath.Join(t.TempDir(), "app.db"), ""))
}

func TestCheckProposeFixPostgres(t *testing.T) {
	t.Parallel()
	// Both the application database and Steward's store on PostgreSQL.
	testProposeFix(t, setupRemedy(t, dbx.Postgres, testenv.PostgresURL(t), testenv.PostgresURL(t)))
}

func testProposeFix(t *testing.T, e *remedyEnv) {
	// A list parameter: one request with every violating key.
	res := e.propose(t, "shop/amounts")
	if res.Check.Status != "fail" || res.Check.Violations != 3 || len(res.Actions) != 1 || len(res.Errors) != 0 {
		t.Fatalf("propose amounts: %+v", res)
	}
	act := res.Actions[0]
	var p struct {
		Service, Fix, Check string
		Params              map[string]string
	}
	if err := json.Unmarshal(act.Action.Params, &p); err != nil {
		t.Fatal(err)
	}
	if act.Action.Kind != "fix.apply" || act.Action.State != "pending_approval" || p.Fix != "zero-amounts" || p.Check != "amounts" ||
		p.Params["id"] != `["2","4","5"]` || act.Rows != 3 || act.Action.Reason != "remedy for check shop/amounts: 3 violations" ||
		!strings.Contains(act.Decision.Missing, "2 more") {
		t.Fatalf("proposed action: %+v params %+v", act, p)
	}
	if act.Action.Plan.Facts["rows_affected"] != float64(3) {
		t.Fatalf("plan facts: %+v", act.Action.Plan.Facts)
	}
	e.approveAndApply(t, act.Action.ID)
	var negative int
	if err := e.db.QueryRow("SELECT count(*) FROM orders WHERE amount < 0").Scan(&negative); err != nil || negative != 0 {
		t.Fatalf("negative amounts after the fix: %d, %v", negative, err)
	}
	// The check re-ran after the fix, passes, and its run is linked.
	runs := e.history(t, "amounts")
	if runs[0].Status != "pass" || runs[0].FixAction == nil || *runs[0].FixAction != act.Action.ID || runs[1].FixAction != nil {
		t.Fatalf("runs after the fix: %+v", runs)
	}
	if r := e.as(t, "alice", "check", "history", "shop/amounts"); !strings.Contains(r.stdout, "action "+itoa(act.Action.ID)) {
		t.Fatalf("history text lacks the link: %+v", r)
	}
	if r := e.as(t, "alice", "check", "propose-fix", "shop/amounts"); r.code != 0 || !strings.Contains(r.stdout, "passes") || !strings.Contains(r.stdout, "nothing to fix") {
		t.Fatalf("propose-fix of a passing check: %+v", r)
	}

	// Scalar parameters: one request per violating row, with the reason
	// given; the row the fix does not cover keeps the check failing.
	res = e.propose(t, "shop/status", "--reason", "INC-9: unknown statuses")
	if res.Check.Violations != 2 || len(res.Actions) != 2 {
		t.Fatalf("propose status: %+v", res)
	}
	got := map[string]int64{}
	for _, a := range res.Actions {
		if err := json.Unmarshal(a.Action.Params, &p); err != nil {
			t.Fatal(err)
		}
		got[p.Params["order_id"]] = a.Action.ID
		if a.Action.Reason != "INC-9: unknown statuses" || a.Rows != 1 {
			t.Fatalf("status action: %+v", a)
		}
	}
	if len(got) != 2 || got["3"] == 0 || got["6"] == 0 {
		t.Fatalf("status requests by order: %v", got)
	}
	e.approveAndApply(t, got["3"])
	runs = e.history(t, "status")
	if runs[0].Status != "fail" || runs[0].Violations != 1 || runs[0].FixAction == nil || *runs[0].FixAction != got["3"] {
		t.Fatalf("status runs after one fix: %+v", runs[0])
	}
	// The text output says who must approve.
	r := e.as(t, "alice", "check", "propose-fix", "shop/status", "--limit", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "needs: 2 more") || !strings.Contains(r.stdout, "steward fix apply") {
		t.Fatalf("propose-fix text: %+v", r)
	}
	// Executed by the server through the API, the fix re-runs the check
	// all the same.
	url, stop := startServeConfig(t, e.cfg, "")
	defer stop()
	for _, u := range []string{"bob", "carol"} {
		if r := e.as(t, u, "approve", itoa(got["6"])); r.code != 0 {
			t.Fatalf("%s approves %d: %+v", u, got["6"], r)
		}
	}
	if r := steward(t, "--server", url, "--token", e.tokens["alice"], "action", "execute", itoa(got["6"])); r.code != 0 {
		t.Fatalf("execute on the server: %+v", r)
	}
	runs = e.history(t, "status")
	if runs[0].Status != "pass" || runs[0].FixAction == nil || *runs[0].FixAction != got["6"] {
		t.Fatalf("status runs after the server applied the fix: %+v", runs[0])
	}
	if r := e.as(t, "alice", "check", "propose-fix", "shop/emails"); r.code != exitUsage || !strings.Contains(r.stderr, "no remedy") {
		t.Fatalf("propose-fix without a remedy: %+v", r)
	}
	if r := e.as(t, "bob", "check", "propose-fix", "shop/nope"); r.code != exitUsage {
		t.Fatalf("propose-fix of an unknown check: %+v", r)
	}
}
