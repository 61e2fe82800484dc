package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var policyExampleConfig = filepath.Join("..", "..", "examples", "policy-tests", "steward.yaml")

// policyCLI runs the CLI in process like steward(t, …); until newPolicyCmd
// is registered in newRootCmd it adds the command itself.
func policyCLI(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globalOptions{stdin: strings.NewReader(""), stderr: &errb}
	root := newRootCmd(g)
	for _, c := range root.Commands() {
		if c.Name() == "policy" {
			return steward(t, args...)
		}
	}
	root.AddCommand(newPolicyCmd(g))
	root.SetArgs(args)
	root.SetIn(g.stdin)
	root.SetOut(&out)
	root.SetErr(&errb)
	cmd, err := root.ExecuteContextC(context.Background())
	if err != nil {
		if cmd != nil && isCobraUsageError(err) {
			err = usageError{err}
		}
		reportError(&errb, err)
	}
	return result{exitCode(err), out.String(), errb.String()}
}

func TestPolicyTestCanaries(t *testing.T) {
	t.Parallel()
	canaries := filepath.Join("..", "..", "examples", "policy-tests", "canaries.yaml")
	r := policyCLI(t, "--config", policyExampleConfig, "policy", "test", canaries)
	if r.code != 0 || strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "PASS  canary self-approval is refused") ||
		!strings.Contains(r.stdout, " 0 failed") {
		t.Fatalf("policy test canaries: %+v", r)
	}
	r = policyCLI(t, "--config", policyExampleConfig, "policy", "test", canaries, "-o", "json")
	var rep policyTestReport
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.Failed != 0 || rep.Passed < 7 ||
		len(rep.Files) != 1 || rep.Files[0].Results[0].Got.Rule == "" {
		t.Fatalf("json: %+v", r)
	}
}

func TestPolicyTestFailingCaseExits1(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "wrong.yaml")
	src := `cases:
  - name: right
    action: {kind: deploy.gate, service: shop, requester: alice}
    votes: [{user: bob, roles: [sre]}]
    expect: {rule: deploys, state: approved}
  - name: self-approval wrongly expected to pass
    action: {kind: deploy.gate, service: shop, requester: alice}
    votes: [{user: alice, roles: [approver]}]
    expect: {state: approved}
`
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := policyCLI(t, "--config", policyExampleConfig, "policy", "test", file)
	for _, want := range []string{"PASS  right", "FAIL  self-approval wrongly expected to pass (" + file + ":6)",
		`state: got "pending", want "approved"`, "ignored alice: requester cannot approve their own action", "1 passed, 1 failed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if r.code != exitFailed || r.stderr != "" {
		t.Fatalf("exit %d, want 1: %+v", r.code, r)
	}
	r = policyCLI(t, "--config", policyExampleConfig, "policy", "test", file, "-o", "json")
	var rep policyTestReport
	if r.code != exitFailed || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.Failed != 1 || rep.Passed != 1 {
		t.Fatalf("json: %+v", r)
	}
}

func TestPolicyTestBadFileExits2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("cases:\n  - name: x\n    action: {kind: deploy.gate, servce: shop}\n    expect: {state: pending}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	worse := filepath.Join(dir, "worse.yaml")
	if err := os.WriteFile(worse, []byte("cases:\n  - name: y\n    action: {kind: deploy.gate}\n    expect: {state: maybe}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := policyCLI(t, "--config", policyExampleConfig, "policy", "test", bad, worse)
	if r.code != exitUsage || !strings.Contains(r.stderr, bad+`:3:33: unknown field "servce"`) ||
		!strings.Contains(r.stderr, worse+`:4:21: unknown state "maybe"`) {
		t.Fatalf("bad files: %+v", r)
	}
}

func TestPolicyTestOneAction(t *testing.T) {
	t.Parallel()
	r := policyCLI(t, "--config", policyExampleConfig, "policy", "test", "--kind", "fix.apply", "--service", "shop",
		"--risk", "high", "--requester", "alice", "--fact", "rows_affected=500", "--at", "2025-06-13T19:00:00Z")
	for _, want := range []string{
		"fix.apply on shop (tier 1, risk high, requested by alice, label env=prod, fact rows_affected=500)",
		"skipped:   low-risk-deploys: action fix.apply is not deploy.gate",
		"rule:      large-data-fixes",
		"requires:  1 approval from role:dba AND 1 approval from role:sre",
		"freeze:    weekend is active until 2025-06-16T08:00:00Z",
		"now:       pending: needs 1 more approval from role:dba; 1 more from role:sre",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}

	// Tier and labels come from the config: billing is pci.
	r = policyCLI(t, "--config", policyExampleConfig, "policy", "test", "--kind", "access.grant", "--service", "billing",
		"--fact", `tables=["orders"]`, "--fact", "note=hello", "--at", "2025-06-11T12:00:00Z", "-o", "json")
	var rep policyExplainReport
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || !strings.Contains(r.stdout, `"approvals": 1`) {
		t.Fatalf("json: %+v", r)
	}
	if rep.Rule.Name != "pci-changes" || rep.Rule.Expiry != "24h" || len(rep.Rule.Groups) != 2 || rep.Rule.Groups[1].From[0] != "role:sre" || rep.Decision.State != "pending" ||
		rep.Freeze != nil || rep.Proposal.Tier != 1 || rep.Proposal.Facts["note"] != "hello" || !strings.Contains(rep.Explain, "rule:      pci-changes") {
		t.Fatalf("json report: %+v", rep)
	}

	r = policyCLI(t, "--config", policyExampleConfig, "policy", "test", "--kind", "deploy.gate", "--service", "blog", "--risk", "low")
	if r.code != 0 || !strings.Contains(r.stdout, "rule:      low-risk-deploys") || !strings.Contains(r.stdout, "now:       approved") {
		t.Fatalf("auto-approve: %+v", r)
	}
}

func TestPolicyTestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "test"}, "nothing to test"},
		{[]string{"policy", "test", "x.yaml", "--kind", "deploy.gate", "--service", "shop"}, "not both"},
		{[]string{"policy", "test", "--kind", "deploy.gate"}, "--kind and --service are both needed"},
		{[]string{"policy", "test", "--service", "shop"}, "--kind and --service are both needed"},
		{[]string{"policy", "test", "--kind", "deploy.gate", "--service", "nope"}, `--service "nope": no such service`},
		{[]string{"policy", "test", "--kind", "deploy.gate", "--service", "shop", "--risk", "huge"}, `--risk "huge"`},
		{[]string{"policy", "test", "--kind", "deploy.gate", "--service", "shop", "--fact", "rows"}, `--fact "rows": want KEY=VALUE`},
		{[]string{"policy", "test", "--kind", "deploy.gate", "--service", "shop", "--at", "friday"}, `--at "friday"`},
		{[]string{"policy", "test", "no-such-file.yaml"}, "no-such-file.yaml: read policy tests"},
		{[]string{"policy", "test", "x.yaml", "-o", "yaml"}, "--output"},
	} {
		r := policyCLI(t, append([]string{"--config", policyExampleConfig}, tc.args...)...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "steward: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	r := policyCLI(t, "--config", filepath.Join(t.TempDir(), "missing.yaml"), "policy", "test", "--kind", "x", "--service", "y")
	if r.code != exitUsage || !strings.Contains(r.stderr, "config file not found") {
		t.Errorf("missing config: %+v", r)
	}
}
