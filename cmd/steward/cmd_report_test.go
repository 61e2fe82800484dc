package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/report"
	"github.com/stewardhq/steward/internal/store"
)

const reportConfig = `steward:
  data_dir: data
services:
  - name: shop
    tier: 1
    owners: [team-shop]
    objectives: {rto: 30m, rpo: 24h}
    contacts: {oncall: "shop on-call", escalation: {name: Dana, phone: "+49 30 1234567"}}
    databases:
      - {name: main, engine: sqlite, url: "SHOPDB"}
    backups:
      - {name: nightly, database: main, method: sqlite, repository: "REPO"}
    drills:
      - name: weekly
        backup: nightly
        freshness: SELECT max(updated_at) FROM orders
        verify:
          - {name: orders, sql: "SELECT count(*) FROM orders", expect: "== 3"}
    checks:
      - {name: stamped, database: main, type: not_null, table: orders, column: updated_at}
    fixes:
      - name: cancel-order
        database: main
        params: {order_id: int}
        select: SELECT id, status FROM orders WHERE id = :order_id AND status = 'pending'
        apply: UPDATE orders SET status = 'cancelled' WHERE id = :order_id AND status = 'pending'
        max_rows: 1
  - name: billing
    databases:
      - {name: main, engine: sqlite, url: "BILLDB"}
    backups:
      - {name: nightly, database: main, method: sqlite, repository: "REPO"}
policies:
  approvals:
    - {name: data-changes, match: {action: ["fix.*", "sql.exec"]}, require: [{approvals: 1, from: ["role:approver"]}]}
`

// reportEnv is a workspace whose evidence was produced by the real
// commands: backups, drills run by two people, a check, an approved fix.
type reportEnv struct {
	cfg    string
	dir    string
	tokens map[string]string
	// mid splits the evidence: billing's backup is before it, the rest after.
	mid time.Time
}

func setupReport(t *testing.T) *reportEnv {
	t.Helper()
	dir := t.TempDir()
	e := &reportEnv{cfg: filepath.Join(dir, "steward.yaml"), dir: dir, tokens: map[string]string{}}
	dbs := map[string]string{}
	for _, name := range []string{"shop", "billing"} {
		path := filepath.Join(dir, name+".db")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, updated_at TEXT NOT NULL)",
			fmt.Sprintf("INSERT INTO orders VALUES (1, 'pending', '%[1]s'), (2, 'paid', '%[1]s'), (3, NULL, '%[1]s')", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)),
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		dbs[name] = path
	}
	os.MkdirAll(filepath.Join(dir, "repo"), 0o700)
	c := strings.NewReplacer("SHOPDB", dbs["shop"], "BILLDB", dbs["billing"], "REPO", "file://"+filepath.Join(dir, "repo")).Replace(reportConfig)
	if err := os.WriteFile(e.cfg, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"alice", "operator"}, {"carol", "operator"}, {"bob", "approver"}, {"audrey", "auditor"}} {
		r := steward(t, "-c", e.cfg, "user", "add", u.name, "--role", u.role, "-o", "json")
		var res userAddResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("user add %s: %+v", u.name, r)
		}
		e.tokens[u.name] = res.Token
	}
	e.ok(t, "alice", "backup", "run", "billing/nightly")
	time.Sleep(5 * time.Millisecond)
	e.mid = time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	e.ok(t, "alice", "backup", "run", "shop/nightly")
	e.ok(t, "alice", "drill", "run", "shop/weekly")
	e.ok(t, "carol", "drill", "run", "shop/weekly")
	e.ok(t, "alice", "check", "run", "shop")
	id := actionID(t, e.as(t, "alice", "fix", "request", "shop/cancel-order", "--param", "order_id=1", "--reason", "INC-9", "-o", "json"))
	e.ok(t, "bob", "approve", id, "--comment", "checked with the customer")
	e.ok(t, "alice", "fix", "apply", id)
	if r := steward(t, "-c", e.cfg, "audit", "checkpoint", "--no-publish"); r.code != 0 {
		t.Fatalf("checkpoint: %+v", r)
	}
	return e
}

func (e *reportEnv) as(t *testing.T, user string, args ...string) result {
	t.Helper()
	return steward(t, append([]string{"-c", e.cfg, "--log-level", "error", "--token", e.tokens[user]}, args...)...)
}

func (e *reportEnv) ok(t *testing.T, user string, args ...string) {
	t.Helper()
	if r := e.as(t, user, args...); r.code != 0 {
		t.Fatalf("%s %v: %+v", user, args, r)
	}
}

func (e *reportEnv) head(t *testing.T) store.AuditHead {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(e.dir, "data", "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := st.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func controlItems(r report.Report, service, control string) []readiness.Evidence {
	for _, s := range r.Sections {
		for _, c := range s.Controls {
			if s.Service == service && c.Control.ID == control {
				return c.Evidence
			}
		}
	}
	return nil
}

func TestReportCommand(t *testing.T) {
	t.Parallel()
	e := setupReport(t)
	head := e.head(t)
	from := e.mid.Format(time.RFC3339Nano)

	// The auditor writes the JSON report; nothing is added to the log.
	out := filepath.Join(e.dir, "json")
	r := e.as(t, "audrey", "report", "--from", from, "--format", "json", "--out", out)
	if r.code != 0 || !strings.Contains(r.stdout, "verify: cd "+out) {
		t.Fatalf("report as auditor: %+v", r)
	}
	if after := e.head(t); after != head {
		t.Fatalf("report wrote to the audit log: %+v -> %+v", head, after)
	}
	var rep report.Report
	data, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.GeneratedBy != "user:audrey" || rep.Checkpoint == nil || !rep.Coverage.Covered || rep.Checkpoint.Size != head.Seq {
		t.Fatalf("report: by %s, checkpoint %+v, coverage %+v", rep.GeneratedBy, rep.Checkpoint, rep.Coverage)
	}
	// The scorecard as of the period's end is attached to the controls.
	if rep.Scorecard == nil || len(rep.Scorecard.Services) != 2 {
		t.Fatalf("scorecard: %+v (note %q)", rep.Scorecard, rep.ScorecardNote)
	}
	for _, s := range rep.Sections {
		for _, c := range s.Controls {
			if s.Service != "" && c.Status == "" {
				t.Errorf("%s %s has no status from the scorecard", s.Service, c.Control.ID)
			}
		}
	}
	// Billing's backup was before --from.
	if got := controlItems(rep, "billing", readiness.CtlBackups); len(got) != 0 {
		t.Errorf("billing backup before the period is in the report: %+v", got)
	}
	backups := controlItems(rep, "shop", readiness.CtlBackups)
	drills := controlItems(rep, "shop", readiness.CtlRestoreDrill)
	checks := controlItems(rep, "shop", readiness.CtlIntegrity)
	changes := controlItems(rep, "shop", readiness.CtlDataChanges)
	if len(backups) != 1 || len(drills) != 2 || len(checks) != 1 || len(changes) != 2 {
		t.Fatalf("shop evidence: %d backups, %d drills, %d checks, %d data changes; want 1, 2, 1, 2 (fix and its approval)\n%s",
			len(backups), len(drills), len(checks), len(changes), data)
	}
	if !strings.Contains(drills[0].Summary, "RTO") || !strings.Contains(drills[0].Summary, "(objective 30m0s)") || !strings.Contains(drills[0].Summary, "RTO within objective") {
		t.Errorf("drill summary: %s", drills[0].Summary)
	}
	vote, fix := changes[0], changes[1] // in time order: the approval came first
	if fix.Kind != "fix" || !strings.Contains(fix.Summary, "1 row(s) affected") || !strings.Contains(fix.Summary, "approved by bob") || !strings.Contains(fix.Summary, "undo available") {
		t.Errorf("fix: %+v", fix)
	}
	if vote.Kind != "approval" || vote.Actor != "user:bob" || !strings.Contains(vote.Summary, "checked with the customer") {
		t.Errorf("approval: %+v", vote)
	}
	rotation := controlItems(rep, "shop", readiness.CtlDrillRotation)
	if len(rotation) != 2 || rotation[0].Actor == rotation[1].Actor {
		t.Errorf("drill rotation: %+v", rotation)
	}
	for _, it := range append(append(append(backups, drills...), checks...), changes...) {
		if it.AuditSeq == 0 || it.AuditSeq > rep.Checkpoint.Size || len(it.AuditHash) != 64 {
			t.Errorf("%s %s has audit event %d %q", it.Kind, it.ID, it.AuditSeq, it.AuditHash)
		}
	}

	// The auditor's verification passes on the files as written.
	verify := func() result {
		return steward(t, "audit", "verify", "--file", filepath.Join(out, "audit.jsonl"), "--checkpoint", filepath.Join(out, "checkpoint.txt"), "--key", filepath.Join(out, "audit.pub"))
	}
	if v := verify(); v.code != 0 || !strings.Contains(v.stdout, fmt.Sprintf("audit log ok: %d events", head.Seq)) {
		t.Fatalf("verify: %+v", v)
	}
	md, _ := os.ReadFile(filepath.Join(out, "VERIFY.md"))
	if !strings.Contains(string(md), report.VerifyCommand) {
		t.Errorf("VERIFY.md lacks the command:\n%s", md)
	}
	// Editing the fix's evidence event (its rows) makes it fail at that seq.
	path := filepath.Join(out, "audit.jsonl")
	raw, _ := os.ReadFile(path)
	lines := strings.Split(string(raw), "\n")
	line := lines[fix.AuditSeq-1]
	edited := strings.Replace(line, `"action":"action.succeeded"`, `"action":"action.failed"`, 1)
	if edited == line {
		t.Fatalf("event %d is not the fix's success: %s", fix.AuditSeq, line)
	}
	lines[fix.AuditSeq-1] = edited
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	if v := verify(); v.code != exitFailed || !strings.Contains(v.stdout, fmt.Sprintf("FAILED verification at event %d", fix.AuditSeq)) {
		t.Fatalf("verify of the edited export: %+v", v)
	}

	// HTML and Markdown, filtered to billing.
	for _, f := range []string{"html", "md"} {
		dir := filepath.Join(e.dir, f)
		if r := e.as(t, "audrey", "report", "--from", "2020-01-01", "--service", "billing", "--format", f, "--out", dir); r.code != 0 {
			t.Fatalf("report %s: %+v", f, r)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "report."+f))
		text := string(b)
		if !strings.Contains(text, "Service billing") || strings.Contains(text, "Service shop") || !strings.Contains(text, "A.8.13") {
			t.Errorf("report.%s is not filtered to billing", f)
		}
		if f == "html" {
			if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindString(text); m != "" {
				t.Errorf("HTML references another host: %s", m)
			}
			if !strings.Contains(text, "@media print") || !strings.Contains(text, "table-header-group") {
				t.Errorf("HTML has no print rules")
			}
		}
		for _, name := range []string{"audit.jsonl", "checkpoint.txt", "audit.pub", "VERIFY.md"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

func TestReportPermissionsAndUsage(t *testing.T) {
	t.Parallel()
	e := setupReport(t)
	out := filepath.Join(e.dir, "out")
	// An operator and an approver hold no audit.read.
	for _, u := range []string{"alice", "bob"} {
		if r := e.as(t, u, "report", "--from", "2020-01-01", "--out", out); r.code != exitUsage || !strings.Contains(r.stderr, `"audit.read"`) {
			t.Errorf("report as %s: %+v", u, r)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", out}, "--from is required"},
		{[]string{"--from", "last week", "--out", out}, "YYYY-MM-DD"},
		{[]string{"--from", "2026-03-01", "--to", "2026-02-01", "--out", out}, "not before --to"},
		{[]string{"--from", "2026-03-01T10:00:00Z", "--to", "2026-03-01T10:00:00Z", "--out", out}, "the period is empty"},
		{[]string{"--from", "2026-03-01", "--to", "31/03/2026", "--out", out}, "--to"},
		{[]string{"--from", "2026-03-01", "--format", "pdf", "--out", out}, "use html, md or json"},
		{[]string{"--from", "2026-03-01"}, "--out is required"},
		{[]string{"--from", "2020-01-01", "--service", "nope", "--out", out}, "configured services are shop, billing"},
		{[]string{"--from", "2020-01-01", "--out", e.cfg}, "is a file"},
	} {
		r := e.as(t, "audrey", append([]string{"report"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("report %v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// Evidence after the newest checkpoint: the report is written, says to
	// run `steward audit checkpoint`, exits 1, and signs nothing itself.
	e.ok(t, "alice", "backup", "run", "shop/nightly")
	head := e.head(t)
	r := e.as(t, "audrey", "report", "--from", "2020-01-01", "--format", "md", "--out", out)
	if r.code != exitFailed || !strings.Contains(r.stderr, "steward audit checkpoint") {
		t.Fatalf("report without a covering checkpoint: %+v", r)
	}
	b, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(b), "Not fully verifiable") || !strings.Contains(string(b), "steward audit checkpoint") {
		t.Errorf("report.md does not say it is not covered")
	}
	if after := e.head(t); after != head {
		t.Errorf("report signed or wrote something: head %+v -> %+v", head, after)
	}
}
