package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

func TestPolicyLoadTestsBadFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/tests/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d bad test files, want at least 6", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".bad.yaml"), func(t *testing.T) {
			t.Parallel()
			cases, err := LoadTests(file)
			var fe FileErrors
			if !errors.As(err, &fe) || cases != nil {
				t.Fatalf("LoadTests = %d cases, %v; want FileErrors", len(cases), err)
			}
			for _, e := range fe {
				if e.File != file {
					t.Errorf("error names %q, want %q", e.File, file)
				}
			}
			golden(t, filepath.Join("tests", strings.TrimSuffix(filepath.Base(file), ".yaml")+".err"), err.Error()+"\n")
		})
	}
}

func TestPolicyLoadTestsMissingFile(t *testing.T) {
	t.Parallel()
	_, err := LoadTests(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: read policy tests") {
		t.Fatalf("err = %v", err)
	}
}

func TestPolicyParseTests(t *testing.T) {
	t.Parallel()
	src := `cases:
  - name: full
    at: 2025-06-13T19:00:00+02:00
    action:
      kind: fix.apply
      service: shop
      tier: 2
      labels: {env: prod}
      risk: high
      requester: alice
      plan: abc
      facts: {rows_affected: 12, table: orders, dry: false}
    votes:
      - {user: bob, roles: [sre]}
      - {user: carol, roles: [dba], decision: reject, age: 90m, stale: true}
    expect: {rule: r, state: pending, auto_approved: false, ignored: [carol], reasons: {carol: plan}, counted: [bob], rejections: 0, missing: "", frozen: ""}
`
	cases, err := ParseTests("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 1 {
		t.Fatalf("%d cases", len(cases))
	}
	c := cases[0]
	if c.Name != "full" || c.File != "t.yaml" || c.Line != 2 || !c.At.Equal(time.Date(2025, 6, 13, 17, 0, 0, 0, time.UTC)) {
		t.Errorf("case header %+v", c)
	}
	p := c.Proposal
	if p.Kind != "fix.apply" || p.Service != "shop" || p.Tier != 2 || p.Labels["env"] != "prod" || p.Risk != "high" ||
		p.Requester != "alice" || p.PlanHash != "abc" || p.Facts["table"] != "orders" || p.Facts["dry"] != false {
		t.Errorf("proposal %+v", p)
	}
	if len(c.Votes) != 2 || c.Votes[0].Decision != Approve || c.Votes[0].Age != 0 || c.Votes[0].Stale ||
		c.Votes[1].Decision != Reject || c.Votes[1].Age != 90*time.Minute || !c.Votes[1].Stale {
		t.Errorf("votes %+v", c.Votes)
	}
	x := c.Expect
	if *x.Rule != "r" || *x.State != "pending" || *x.AutoApproved || (*x.Ignored)[0] != "carol" || x.Reasons["carol"] != "plan" ||
		(*x.Counted)[0] != "bob" || *x.Rejections != 0 || *x.Missing != "" || *x.Frozen != "" {
		t.Errorf("expect %+v", x)
	}
	defaults, err := ParseTests("d.yaml", []byte("cases:\n  - {name: d, action: {kind: x}, expect: {state: pending}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := defaults[0]; d.Proposal.PlanHash != defaultPlanHash || !d.At.IsZero() || d.Expect.Rule != nil || d.Expect.Ignored != nil {
		t.Errorf("defaults %+v", d)
	}
}

// TestRunTestsReportsProblems checks that wrong expectations fail with a
// problem each, and that right ones pass.
func TestPolicyRunTestsReportsProblems(t *testing.T) {
	t.Parallel()
	e := mustNew(t, evalPolicies())
	src := `cases:
  - name: right
    action: {kind: fix.apply, requester: alice}
    votes:
      - {user: dave, roles: [dba, sre]}
      - {user: alice, roles: [dba]}
      - {user: bob, roles: [sre], stale: true}
      - {user: carol, roles: [dba], age: 5h}
    expect:
      rule: two-groups
      state: pending
      auto_approved: false
      counted: [dave]
      ignored: [alice, bob, carol]
      reasons: {alice: own action, bob: plan changed, carol: expired}
      rejections: 0
      missing: "1 more approval from role:sre"
      frozen: ""
  - name: wrong
    action: {kind: fix.apply, requester: alice}
    votes: [{user: dave, roles: [dba, sre]}]
    expect:
      rule: other
      state: approved
      auto_approved: true
      counted: [dave, bob]
      ignored: [dave]
      reasons: {dave: expired}
      rejections: 1
      missing: ""
      frozen: weekend
`
	cases, err := ParseTests("run.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res := RunTests(e, cases, t0)
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	if !res[0].Pass || len(res[0].Problems) != 0 || res[0].Where != "run.yaml:2" {
		t.Errorf("right: %+v", res[0])
	}
	if res[1].Pass || len(res[1].Problems) != 9 {
		t.Errorf("wrong: want 9 problems, got %d:\n%s", len(res[1].Problems), strings.Join(res[1].Problems, "\n"))
	}
	golden(t, "tests/run-problems.txt", strings.Join(res[1].Problems, "\n")+"\n")
}

func TestPolicyFillFromServices(t *testing.T) {
	t.Parallel()
	cfg, _ := examplePolicy(t)
	cases := []Case{
		{Name: "from service", Proposal: Proposal{Service: "billing"}},
		{Name: "own tier kept", Proposal: Proposal{Service: "billing", Tier: 4, Labels: map[string]string{}}},
		{Name: "unknown service", Proposal: Proposal{Service: "nope"}},
	}
	got := FillFromServices(cases, cfg.Services)
	if p := got[0].Proposal; p.Tier != 1 || p.Labels["pci"] != "true" {
		t.Errorf("from service: %+v", p)
	}
	if p := got[1].Proposal; p.Tier != 4 || len(p.Labels) != 0 {
		t.Errorf("own values replaced: %+v", p)
	}
	if p := got[2].Proposal; p.Tier != 0 || p.Labels != nil {
		t.Errorf("unknown service: %+v", p)
	}
	if cases[0].Proposal.Tier != 0 {
		t.Error("FillFromServices changed its input")
	}
}

func FuzzParseTests(f *testing.F) {
	for _, pattern := range []string{"testdata/tests/*.yaml", "../../examples/policy-tests/canaries.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	p := evalPolicies()
	p.Freezes = []config.Freeze{{Name: "weekend", Start: "0 18 * * 5", Duration: "62h"}}
	e, err := New(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cases, err := ParseTests("fuzz.yaml", data)
		if err != nil {
			var fe FileErrors
			if !errors.As(err, &fe) || len(fe) == 0 {
				t.Fatalf("error %T %v is not FileErrors", err, err)
			}
			return
		}
		for _, r := range RunTests(e, cases, t0) {
			if r.Pass != (len(r.Problems) == 0) {
				t.Fatalf("pass %v with problems %v", r.Pass, r.Problems)
			}
		}
	})
}
