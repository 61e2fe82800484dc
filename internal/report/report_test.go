package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	dbxall "github.com/stewardhq/steward/internal/dbx/all"
	"github.com/stewardhq/steward/internal/dbx/sqlite"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

var update = flag.Bool("update", false, "rewrite docs/compliance-mapping.md")

const mappingFile = "../../docs/compliance-mapping.md"

// TestMappingDoc fails when docs/compliance-mapping.md is stale; run it
// with -update to regenerate the file.
func TestMappingDoc(t *testing.T) {
	t.Parallel()
	got := MappingMarkdown()
	if *update {
		if err := os.WriteFile(mappingFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(mappingFile)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/report -run TestMappingDoc -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale; run go test ./internal/report -run TestMappingDoc -update", mappingFile)
	}
	for _, c := range readiness.Catalog() {
		if EvidenceShown[c.ID] == "" {
			t.Errorf("control %s has no entry in EvidenceShown: say what evidence the report shows for it", c.ID)
		}
		for _, r := range c.Refs {
			if !strings.Contains(string(got), r.Clause) {
				t.Errorf("mapping lacks clause %s %s of control %s", r.Framework, r.Clause, c.ID)
			}
		}
	}
	for id := range EvidenceShown {
		if _, ok := readiness.Lookup(id); !ok {
			t.Errorf("EvidenceShown names %q, which is not in the readiness catalog", id)
		}
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		end  bool
		want string
	}{
		{"2026-03-01", false, "2026-03-01T00:00:00Z"},
		{"2026-03-01", true, "2026-03-01T23:59:59.999999Z"},
		{"2026-03-01T10:00:00+02:00", false, "2026-03-01T08:00:00Z"},
		{"2026-03-01T10:00:00.5Z", true, "2026-03-01T10:00:00.5Z"},
	} {
		got, err := ParseDate(tc.in, tc.end)
		if err != nil || got.Format(time.RFC3339Nano) != tc.want {
			t.Errorf("ParseDate(%q, %v) = %s, %v; want %s", tc.in, tc.end, got.Format(time.RFC3339Nano), err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2026-13-01", "01.03.2026", "2026-03-01 10:00"} {
		if _, err := ParseDate(bad, false); err == nil || !strings.Contains(err.Error(), "YYYY-MM-DD") {
			t.Errorf("ParseDate(%q) = %v, want an error naming the formats", bad, err)
		}
	}
}

func TestLineLimit(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := &lineLimit{w: &buf, n: 2}
	n, err := l.Write([]byte("a\nbb"))
	if n != 4 || err != nil {
		t.Fatalf("first write = %d, %v", n, err)
	}
	if _, err := l.Write([]byte("b\nc\nd\n")); !errors.Is(err, errEnough) {
		t.Fatalf("write past the limit = %v, want errEnough", err)
	}
	if buf.String() != "a\nbbb\n" || l.n != 0 {
		t.Fatalf("passed %q, left %d", buf.String(), l.n)
	}
}

// env is a store with a started audit log, a signing key and a config of
// two SQLite services with backups.
type env struct {
	ctx      context.Context
	dir      string
	store    *store.Store
	log      *audit.Log
	cfg      *config.Config
	signer   note.Signer
	verifier note.Verifier
	pub      []byte
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var svcs strings.Builder
	for _, name := range []string{"shop", "billing"} {
		db := filepath.Join(dir, name+".db")
		if err := sqlite.Create(db); err != nil {
			t.Fatal(err)
		}
		if err := sqlite.New().Exec(ctx, db, "CREATE TABLE orders (id INTEGER PRIMARY KEY, updated_at TEXT); INSERT INTO orders VALUES (1, '2026-01-01T00:00:00Z');"); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&svcs, "  - name: %s\n    tier: 1\n    owners: [team-%s]\n    contacts: {oncall: \"%s on-call\"}\n    databases:\n      - {name: main, engine: sqlite, url: %q}\n"+
			"    backups:\n      - {name: nightly, database: main, method: sqlite, repository: %q}\n", name, name, name, db, "file://"+filepath.Join(dir, "repo"))
		if name == "shop" {
			svcs.WriteString("    probes:\n      - {name: home, type: http, url: \"http://127.0.0.1:9/\", slo: {availability: \"99.5\"}}\n")
		}
	}
	text := "steward:\n  data_dir: " + filepath.Join(dir, "data") + "\nservices:\n" + svcs.String() +
		"policies:\n  approvals:\n    - {name: changes, match: {action: [\"fix.*\"]}, require: [{approvals: 2, from: [\"role:approver\"]}]}\n"
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte(text), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := audit.New(st, audit.Options{Logger: slog.New(slog.DiscardHandler)})
	l.Start(ctx)
	t.Cleanup(func() { l.Close() })
	if err := os.MkdirAll(cfg.Steward.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	signer, verifier, err := audit.LoadOrCreateKey(cfg.Steward.DataDir, "", cfg.Steward.Audit.Origin)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(cfg.Steward.DataDir, audit.PubKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, dir: dir, store: st, log: l, cfg: cfg, signer: signer, verifier: verifier, pub: pub}
}

func (e *env) auditFunc() func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
	return func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error {
		_, err := e.log.Append(ctx, audit.Entry{Actor: actor, Action: action, Target: target, Outcome: outcome, Details: details})
		return err
	}
}

// backup takes a real backup of a service through internal/backup.
func (e *env) backup(t *testing.T, service, actor string) backup.Manifest {
	t.Helper()
	svc := e.cfg.Service(service)
	m, err := backup.Run(e.ctx, backup.Deps{Store: e.store, Engines: dbxall.Registry(), Audit: e.auditFunc(), TempDir: e.dir}, svc, svc.Backup("nightly"), actor)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) checkpoint(t *testing.T) audit.Checkpoint {
	t.Helper()
	cp, err := e.log.Checkpoint(e.ctx, e.signer, e.cfg.Steward.Audit.Origin)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func (e *env) build(t *testing.T, o Options) *Report {
	t.Helper()
	r, err := Build(e.ctx, Deps{Store: e.store, Config: e.cfg, Verifier: e.verifier}, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// items returns the evidence of a control of a service's section.
func items(r *Report, service, control string) []readiness.Evidence {
	for _, s := range r.Sections {
		if s.Service != service {
			continue
		}
		for _, c := range s.Controls {
			if c.Control.ID == control {
				return c.Evidence
			}
		}
	}
	return nil
}

func verifyBundle(t *testing.T, dir string, verifier note.Verifier) audit.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.ParseCheckpoint(b, verifier)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := audit.Verify(context.Background(), audit.JSONLSource(f), []audit.Checkpoint{cp})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestReportBackupsPeriodAndVerification(t *testing.T) {
	t.Parallel()
	e := setup(t)
	early := e.backup(t, "shop", "alice")
	time.Sleep(2 * time.Millisecond)
	from := time.Now().UTC()
	m := e.backup(t, "shop", "bob")
	e.backup(t, "billing", "carol")
	cp := e.checkpoint(t)
	to := time.Now().UTC()
	// Evidence after the period: not in the report.
	e.backup(t, "shop", "dave")

	r := e.build(t, Options{From: from, To: to, Actor: "user:audrey"})
	shop := items(r, "shop", readiness.CtlBackups)
	if len(shop) != 1 || shop[0].Actor != "bob" || !strings.Contains(shop[0].Summary, m.ID) || !strings.Contains(shop[0].Summary, m.Objects[0].SHA256) {
		t.Fatalf("shop backups in the period = %+v; want only bob's %s with its checksum", shop, m.ID)
	}
	if strings.Contains(fmt.Sprint(shop), early.ID) {
		t.Errorf("the backup before the period is in the report")
	}
	if len(items(r, "billing", readiness.CtlBackups)) != 1 {
		t.Errorf("billing backups = %+v", items(r, "billing", readiness.CtlBackups))
	}
	// Each item names the event that records it.
	evs, err := e.store.ListAudit(e.ctx, store.AuditFilter{Action: "backup.run", Target: "backup:shop/nightly"})
	if err != nil {
		t.Fatal(err)
	}
	var rec store.AuditRecord
	for _, ev := range evs {
		if strings.Contains(ev.Details, m.ID) {
			rec = ev
		}
	}
	if shop[0].AuditSeq != rec.Seq || shop[0].AuditHash != rec.Hash || rec.Seq == 0 {
		t.Fatalf("shop backup names event %d %s, want %d %s", shop[0].AuditSeq, shop[0].AuditHash, rec.Seq, rec.Hash)
	}
	if r.Checkpoint == nil || r.Checkpoint.Size != cp.Size || !r.Coverage.Covered || r.Coverage.Problem != "" {
		t.Fatalf("checkpoint = %+v, coverage %+v; want checkpoint at %d covering everything", r.Checkpoint, r.Coverage, cp.Size)
	}
	// The checkpoint signed in the period is Steward-wide evidence.
	if cps := items(r, "", readiness.CtlAuditLog); len(cps) != 1 || cps[0].AuditSeq != cp.Size {
		t.Errorf("checkpoint evidence = %+v", cps)
	}

	dir := filepath.Join(e.dir, "out")
	b, err := Write(e.ctx, e.store, r, HTML, dir, e.pub)
	if err != nil {
		t.Fatal(err)
	}
	if b.Events != cp.Size || len(b.Files) != 5 {
		t.Fatalf("bundle = %+v", b)
	}
	if rep := verifyBundle(t, dir, e.verifier); !rep.OK || rep.Events != cp.Size || rep.Checkpoints != 1 {
		t.Fatalf("verification of the bundle = %+v", rep)
	}
	verify, _ := os.ReadFile(filepath.Join(dir, VerifyFile))
	if !strings.Contains(string(verify), VerifyCommand) || !strings.Contains(string(verify), fmt.Sprintf("audit log ok: %d events", cp.Size)) {
		t.Errorf("VERIFY.md:\n%s", verify)
	}

	// Edit the recorded backup's size in audit.jsonl: verification fails at
	// that event.
	path := filepath.Join(dir, AuditFile)
	data, _ := os.ReadFile(path)
	lines := strings.Split(string(data), "\n")
	line := lines[rec.Seq-1]
	edited := regexp.MustCompile(`"size":\d+`).ReplaceAllString(line, `"size":1`)
	if edited == line {
		t.Fatalf("no size in event %d: %s", rec.Seq, line)
	}
	lines[rec.Seq-1] = edited
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if rep := verifyBundle(t, dir, e.verifier); rep.OK || rep.FirstBad != rec.Seq {
		t.Fatalf("verification of the edited export = %+v; want a failure at event %d", rep, rec.Seq)
	}
}

func TestReportServiceFilterAndFormats(t *testing.T) {
	t.Parallel()
	e := setup(t)
	from := time.Now().UTC().Add(-time.Second)
	e.backup(t, "shop", "alice")
	e.backup(t, "billing", "alice")
	e.checkpoint(t)
	r := e.build(t, Options{From: from, To: time.Now().UTC(), Service: "billing", Actor: "user:audrey"})
	var names []string
	for _, s := range r.Sections {
		names = append(names, s.Service)
	}
	if fmt.Sprint(names) != "[ billing]" {
		t.Fatalf("sections = %q, want the Steward-wide one and billing", names)
	}
	if len(items(r, "billing", readiness.CtlBackups)) != 1 {
		t.Fatalf("billing backups = %+v", items(r, "billing", readiness.CtlBackups))
	}
	// Steward-wide evidence stays with a filter.
	if cps := items(r, "", readiness.CtlAuditLog); len(cps) != 1 {
		t.Errorf("Steward-wide checkpoints with --service = %+v", cps)
	}
	for _, s := range r.Sections {
		want := len(readiness.Catalog())
		if s.Service == "" {
			want = len(stewardWide)
		}
		if len(s.Controls) != want {
			t.Errorf("section %q has %d controls, want %d", s.Service, len(s.Controls), want)
		}
	}

	for _, f := range Formats {
		var buf bytes.Buffer
		if err := r.Render(&buf, f); err != nil {
			t.Fatalf("render %s: %v", f, err)
		}
		out := buf.String()
		for _, want := range []string{"billing", "ISO/IEC 27001:2022", "A.8.13", r.Checkpoint.Hash} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q", f, want)
			}
		}
		if strings.Contains(out, "team-shop") {
			t.Errorf("%s shows the filtered-out shop service", f)
		}
		switch f {
		case JSON:
			var back Report
			if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back.Sections) != 2 || back.Coverage.Items != r.Coverage.Items {
				t.Errorf("JSON does not round-trip: %v", err)
			}
		case HTML:
			checkSelfContained(t, out)
		case Markdown:
			if !strings.Contains(out, "| When (UTC) | Kind | ID | Evidence | Actor | Audit seq | Audit hash |") {
				t.Errorf("markdown has no evidence table:\n%s", out)
			}
		}
	}
	if _, err := Build(e.ctx, Deps{Store: e.store, Config: e.cfg, Verifier: e.verifier}, Options{From: from, To: time.Now(), Service: "nope"}); !errors.Is(err, ErrUnknownService) ||
		!strings.Contains(err.Error(), "shop, billing") {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := Build(e.ctx, Deps{Store: e.store, Config: e.cfg, Verifier: e.verifier}, Options{From: from, To: from}); !errors.Is(err, ErrBadPeriod) {
		t.Errorf("empty period: %v", err)
	}
}

// checkSelfContained fails when the HTML loads anything from elsewhere or
// lacks the print rules.
func checkSelfContained(t *testing.T, html string) {
	t.Helper()
	if m := regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?\s*(https?:)?//`).FindString(html); m != "" {
		t.Errorf("HTML references another host: %s", m)
	}
	if m := regexp.MustCompile(`(?i)url\(|@import|<script|<link`).FindString(html); m != "" {
		t.Errorf("HTML fetches or runs something: %s", m)
	}
	for _, want := range []string{"@media print", "break-before: page", "display: table-header-group", "<thead>"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}

func TestReportProbeAvailability(t *testing.T) {
	t.Parallel()
	e := setup(t)
	from := time.Now().UTC().Add(-time.Hour)
	var rows []store.ProbeResultRow
	for i, st := range []string{"up", "up", "up", "down", "error", "missed"} {
		rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: "home", Location: "local", Status: st, StartedAt: from.Add(time.Duration(i+1) * time.Minute), DurationMS: 10 * int64(i+1)})
	}
	rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: "home", Location: "local", Status: "down", StartedAt: from.Add(-time.Minute)})
	if err := e.store.InsertProbeResults(e.ctx, rows); err != nil {
		t.Fatal(err)
	}
	r := e.build(t, Options{From: from, To: time.Now().UTC()})
	got := items(r, "shop", readiness.CtlProbesSLO)
	if len(got) != 1 || got[0].AuditSeq != 0 {
		t.Fatalf("probe evidence = %+v", got)
	}
	for _, want := range []string{"probe shop/home from local: availability 60.00% (3 of 5 runs up, 1 down, 1 error(s)), mean 30 ms, max 50 ms; 1 run(s) missed",
		"SLO availability 99.5% over 30d: 75.00% of 4 deciding runs up, objective MISSED"} {
		if !strings.Contains(got[0].Summary, want) {
			t.Errorf("probe summary %q lacks %q", got[0].Summary, want)
		}
	}
}

func TestReportWithoutCoveringCheckpoint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	from := time.Now().UTC().Add(-time.Second)
	e.backup(t, "shop", "alice")
	r := e.build(t, Options{From: from, To: time.Now().UTC()})
	if r.Checkpoint != nil || r.Coverage.Covered || !strings.Contains(r.Coverage.Problem, "steward audit checkpoint") {
		t.Fatalf("no checkpoint: %+v %+v", r.Checkpoint, r.Coverage)
	}
	dir := filepath.Join(e.dir, "out")
	b, err := Write(e.ctx, e.store, r, Markdown, dir, e.pub)
	if err != nil || len(b.Files) != 2 {
		t.Fatalf("bundle without a checkpoint = %+v, %v; want the report and VERIFY.md", b, err)
	}
	verify, _ := os.ReadFile(filepath.Join(dir, VerifyFile))
	if !strings.Contains(string(verify), "cannot be verified") {
		t.Errorf("VERIFY.md:\n%s", verify)
	}

	// A checkpoint, then more evidence: the old checkpoint does not cover
	// the new item, and the report says so.
	cp := e.checkpoint(t)
	e.backup(t, "shop", "bob")
	head, _ := e.store.AuditHead(e.ctx)
	r = e.build(t, Options{From: from, To: time.Now().UTC()})
	if r.Checkpoint == nil || r.Checkpoint.Size != cp.Size || r.Coverage.Covered || r.Coverage.Uncovered != 1 ||
		!strings.Contains(r.Coverage.Problem, "steward audit checkpoint") {
		t.Fatalf("stale checkpoint: %+v %+v", r.Checkpoint, r.Coverage)
	}
	// Building the report wrote nothing to the log.
	if after, _ := e.store.AuditHead(e.ctx); after != head {
		t.Errorf("the report appended to the audit log: head %+v -> %+v", head, after)
	}
	// A key that did not sign the checkpoint is refused.
	_, other, err := audit.LoadOrCreateKey(t.TempDir(), "", e.cfg.Steward.Audit.Origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(e.ctx, Deps{Store: e.store, Config: e.cfg, Verifier: other}, Options{From: from, To: time.Now()}); err == nil || !strings.Contains(err.Error(), "audit.pub") {
		t.Errorf("wrong key: %v", err)
	}
}
