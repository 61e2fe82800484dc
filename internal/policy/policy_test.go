package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

func req(n int, from ...string) config.Requirement {
	return config.Requirement{Approvals: n, From: from}
}

func mustNew(t *testing.T, p config.Policies) *Engine {
	t.Helper()
	e, err := New(p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func TestPolicyNewRejectsBadPolicies(t *testing.T) {
	t.Parallel()
	ok := []config.Requirement{req(1, "role:dba")}
	for _, tc := range []struct {
		name string
		p    config.Policies
		want string
	}{
		{"no name", config.Policies{Approvals: []config.ApprovalRule{{Require: ok}}}, "rule has no name"},
		{"reserved name", config.Policies{Approvals: []config.ApprovalRule{{Name: "default", Require: ok}}}, "reserved"},
		{"duplicate name", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: ok}, {Name: "a", Require: ok}}}, "duplicate rule name"},
		{"nothing required", config.Policies{Approvals: []config.ApprovalRule{{Name: "a"}}}, "requires no approvals"},
		{"empty from", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: []config.Requirement{{Approvals: 1}}}}}, "from must list"},
		{"bad from", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: []config.Requirement{req(1, "team:x")}}}}, `invalid from entry "team:x"`},
		{"negative approvals", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: []config.Requirement{req(-1, "role:x")}}}}, "approvals -1"},
		{"negative deny", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: ok, Deny: -2}}}, "deny -2"},
		{"bad expires", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: ok, Expires: "soon"}}}, "expires"},
		{"bad risk", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: ok, Match: config.PolicyMatch{Risk: []string{"huge"}}}}}, "unknown risk level"},
		{"facts syntax", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: ok, Match: config.PolicyMatch{Facts: "rows >"}}}}, "invalid expression"},
		{"facts not bool", config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: ok, Match: config.PolicyMatch{Facts: "1 + 2"}}}}, "expected bool"},
		{"bad default", config.Policies{Default: req(1, "nobody")}, "policies.default"},
		{"freeze cron", config.Policies{Freezes: []config.Freeze{{Name: "f", Start: "every friday", Duration: "1h"}}}, "policies.freezes[0] (f)"},
		{"freeze duration", config.Policies{Freezes: []config.Freeze{{Name: "f", Start: "0 18 * * 5", Duration: "a while"}}}, "invalid duration"},
		{"freeze @every", config.Policies{Freezes: []config.Freeze{{Name: "f", Start: "@every 1h", Duration: "1h"}}}, "no fixed start"},
		{"freeze no name", config.Policies{Freezes: []config.Freeze{{Start: "0 18 * * 5", Duration: "1h"}}}, "freeze has no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPolicyNewFillsDefaults(t *testing.T) {
	t.Parallel()
	e := mustNew(t, config.Policies{Approvals: []config.ApprovalRule{{Name: "a", Require: []config.Requirement{{From: []string{"role:dba"}}}}}})
	r := e.Match(Proposal{Kind: "fix.apply"})
	if r.Name != "a" || r.Deny != 1 || r.Expiry != 24*time.Hour || r.Groups[0].Approvals != 1 {
		t.Fatalf("defaults not filled: %+v", r)
	}
	d := e.Match(Proposal{}) // still rule a: it matches everything
	d.Groups[0].From[0] = "role:mutated"
	if again := e.Match(Proposal{}); again.Groups[0].From[0] != "role:dba" {
		t.Fatal("Match returned the engine's own slices; a caller changed the policy")
	}

	def := mustNew(t, config.Policies{}).Match(Proposal{Kind: "deploy.gate"})
	want := Rule{Name: "default", Groups: []config.Requirement{req(1, "role:approver")}, Deny: 1, Expiry: 24 * time.Hour}
	if def.Name != want.Name || def.Deny != want.Deny || def.Expiry != want.Expiry || def.AutoApprove ||
		len(def.Groups) != 1 || def.Groups[0].Approvals != 1 || def.Groups[0].From[0] != "role:approver" {
		t.Fatalf("default rule %+v, want %+v", def, want)
	}
	custom := mustNew(t, config.Policies{Default: req(2, "role:sre")}).Match(Proposal{})
	if custom.Groups[0].Approvals != 2 || custom.Groups[0].From[0] != "role:sre" {
		t.Fatalf("configured default ignored: %+v", custom)
	}
}

func TestPolicyMatch(t *testing.T) {
	t.Parallel()
	need := []config.Requirement{req(1, "role:dba")}
	rule := func(name string, m config.PolicyMatch) config.ApprovalRule {
		return config.ApprovalRule{Name: name, Match: m, Require: need}
	}
	for _, tc := range []struct {
		name  string
		match config.PolicyMatch
		p     Proposal
		want  bool
	}{
		{"empty matches all", config.PolicyMatch{}, Proposal{Kind: "x.y"}, true},
		{"action exact", config.PolicyMatch{Action: []string{"fix.apply"}}, Proposal{Kind: "fix.apply"}, true},
		{"action other", config.PolicyMatch{Action: []string{"fix.apply"}}, Proposal{Kind: "fix.preview"}, false},
		{"action prefix", config.PolicyMatch{Action: []string{"access.*"}}, Proposal{Kind: "access.grant"}, true},
		{"action prefix needs the dot", config.PolicyMatch{Action: []string{"access.*"}}, Proposal{Kind: "accessor"}, false},
		{"action star", config.PolicyMatch{Action: []string{"*"}}, Proposal{Kind: "anything"}, true},
		{"action one of", config.PolicyMatch{Action: []string{"sql.exec", "fix.*"}}, Proposal{Kind: "fix.apply"}, true},
		{"service", config.PolicyMatch{Service: []string{"shop", "billing"}}, Proposal{Service: "billing"}, true},
		{"service other", config.PolicyMatch{Service: []string{"shop"}}, Proposal{Service: "blog"}, false},
		{"labels all equal", config.PolicyMatch{Labels: map[string]string{"env": "prod", "pci": "true"}}, Proposal{Labels: map[string]string{"env": "prod", "pci": "true", "x": "y"}}, true},
		{"labels one differs", config.PolicyMatch{Labels: map[string]string{"env": "prod", "pci": "true"}}, Proposal{Labels: map[string]string{"env": "prod", "pci": "false"}}, false},
		{"labels one missing", config.PolicyMatch{Labels: map[string]string{"env": "prod", "pci": "true"}}, Proposal{Labels: map[string]string{"env": "prod"}}, false},
		{"risk", config.PolicyMatch{Risk: []string{"high", "critical"}}, Proposal{Risk: "critical"}, true},
		{"risk other", config.PolicyMatch{Risk: []string{"high", "critical"}}, Proposal{Risk: "medium"}, false},
		{"risk unset", config.PolicyMatch{Risk: []string{"high"}}, Proposal{}, false},
		{"tier", config.PolicyMatch{Tier: []int{1, 2}}, Proposal{Tier: 2}, true},
		{"tier other", config.PolicyMatch{Tier: []int{1, 2}}, Proposal{Tier: 3}, false},
		{"all criteria", config.PolicyMatch{Action: []string{"fix.*"}, Service: []string{"shop"}, Risk: []string{"high"}, Tier: []int{1}, Facts: "rows_affected > 10"},
			Proposal{Kind: "fix.apply", Service: "shop", Risk: "high", Tier: 1, Facts: map[string]any{"rows_affected": 11}}, true},
		{"all but one criterion", config.PolicyMatch{Action: []string{"fix.*"}, Service: []string{"shop"}, Risk: []string{"high"}, Tier: []int{1}, Facts: "rows_affected > 10"},
			Proposal{Kind: "fix.apply", Service: "shop", Risk: "high", Tier: 2, Facts: map[string]any{"rows_affected": 11}}, false},
		{"facts true", config.PolicyMatch{Facts: "rows_affected > 100"}, Proposal{Facts: map[string]any{"rows_affected": 101}}, true},
		{"facts false", config.PolicyMatch{Facts: "rows_affected > 100"}, Proposal{Facts: map[string]any{"rows_affected": 100}}, false},
		{"facts uint64 from YAML", config.PolicyMatch{Facts: "rows_affected > 100"}, Proposal{Facts: map[string]any{"rows_affected": uint64(500)}}, true},
		{"facts float", config.PolicyMatch{Facts: "ratio >= 0.5"}, Proposal{Facts: map[string]any{"ratio": 0.75}}, true},
		{"facts string and list", config.PolicyMatch{Facts: `table in ["orders", "payments"] && len(columns) > 1`}, Proposal{Facts: map[string]any{"table": "orders", "columns": []any{"a", "b"}}}, true},
		{"facts missing fact", config.PolicyMatch{Facts: "rows_affected > 100"}, Proposal{Facts: map[string]any{"other": 1}}, false},
		{"facts nil facts", config.PolicyMatch{Facts: "rows_affected > 100"}, Proposal{}, false},
		{"facts missing fact under not", config.PolicyMatch{Facts: "not (dry == true)"}, Proposal{Facts: map[string]any{}}, false},
		{"facts missing fact compared with nil", config.PolicyMatch{Facts: "x == nil"}, Proposal{Facts: map[string]any{}}, false},
		{"facts type error", config.PolicyMatch{Facts: "rows_affected > 100"}, Proposal{Facts: map[string]any{"rows_affected": "many"}}, false},
		{"facts non-bool at run time", config.PolicyMatch{Facts: "flag"}, Proposal{Facts: map[string]any{"flag": "yes"}}, false},
		{"facts nil at run time", config.PolicyMatch{Facts: "flag"}, Proposal{Facts: map[string]any{"flag": nil}}, false},
		{"facts let binding is not a fact", config.PolicyMatch{Facts: "let n = rows_affected; n > 1"}, Proposal{Facts: map[string]any{"rows_affected": 2}}, true},
		{"facts predicate closure", config.PolicyMatch{Facts: `any(tables, # == "orders")`}, Proposal{Facts: map[string]any{"tables": []any{"users", "orders"}}}, true},
		{"facts $env for optional facts", config.PolicyMatch{Facts: `($env["rows"] ?? 0) > 5`}, Proposal{Facts: map[string]any{}}, false},
		{"facts $env present", config.PolicyMatch{Facts: `($env["rows"] ?? 0) > 5`}, Proposal{Facts: map[string]any{"rows": 6}}, true},
		{"facts modulo by zero", config.PolicyMatch{Facts: "a % b > 1"}, Proposal{Facts: map[string]any{"a": 1, "b": 0}}, false},
		{"facts index out of range", config.PolicyMatch{Facts: `tables[5] == "x"`}, Proposal{Facts: map[string]any{"tables": []any{}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := mustNew(t, config.Policies{Approvals: []config.ApprovalRule{rule("r", tc.match)}})
			got := e.Match(tc.p).Name == "r"
			if got != tc.want {
				_, why := e.match(tc.p)
				t.Fatalf("match = %v, want %v (why: %v)", got, tc.want, why)
			}
		})
	}
}

func TestPolicyMatchFirstRuleWins(t *testing.T) {
	t.Parallel()
	need := []config.Requirement{req(1, "role:dba")}
	e := mustNew(t, config.Policies{Approvals: []config.ApprovalRule{
		{Name: "big", Match: config.PolicyMatch{Action: []string{"fix.*"}, Facts: "rows_affected > 100"}, Require: need},
		{Name: "fixes", Match: config.PolicyMatch{Action: []string{"fix.*"}}, Require: need},
		{Name: "anything", Require: need},
	}})
	for _, tc := range []struct {
		p    Proposal
		want string
	}{
		{Proposal{Kind: "fix.apply", Facts: map[string]any{"rows_affected": 1000}}, "big"},
		{Proposal{Kind: "fix.apply", Facts: map[string]any{"rows_affected": 10}}, "fixes"},
		{Proposal{Kind: "fix.apply"}, "fixes"},
		{Proposal{Kind: "deploy.gate"}, "anything"},
	} {
		if got := e.Match(tc.p).Name; got != tc.want {
			t.Errorf("Match(%+v) = %s, want %s", tc.p, got, tc.want)
		}
	}
	if got := mustNew(t, config.Policies{Approvals: []config.ApprovalRule{{Name: "fixes", Match: config.PolicyMatch{Action: []string{"fix.*"}}, Require: need}}}).
		Match(Proposal{Kind: "deploy.gate"}).Name; got != DefaultRuleName {
		t.Errorf("no rule matches: got %s, want default", got)
	}
}

func TestPolicyFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		4 * time.Hour:                 "4h",
		90 * time.Minute:              "1h30m",
		30 * time.Minute:              "30m",
		7 * 24 * time.Hour:            "7d",
		26 * time.Hour:                "26h",
		24 * time.Hour:                "24h",
		48 * time.Hour:                "2d",
		90 * time.Second:              "1m30s",
		time.Hour + 30*time.Second:    "1h0m30s",
		24*time.Hour + 15*time.Minute: "24h15m",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

// FuzzFactsExpression checks that no facts expression, whatever the facts,
// makes New or Match panic.
func FuzzFactsExpression(f *testing.F) {
	for _, s := range []string{"rows_affected > 100", "not (x == 3)", `tables[5] == "x"`, "a % b > 1", `let n = x; n > 1`,
		`any(tables, # == "orders")`, `($env["rows"] ?? 0) > 5`, "x.y.z", "x()", `x matches "["`, "1..x"} {
		f.Add(s, int64(0), "orders")
	}
	f.Fuzz(func(t *testing.T, src string, n int64, s string) {
		e, err := New(config.Policies{Approvals: []config.ApprovalRule{{Name: "r", Match: config.PolicyMatch{Facts: src},
			Require: []config.Requirement{req(1, "role:dba")}}}})
		if err != nil {
			return
		}
		for _, facts := range []map[string]any{nil, {}, {"x": n, "rows_affected": n, "a": n, "b": n, "tables": []any{s}, "table": s}, {"x": s, "y": nil}} {
			e.Match(Proposal{Facts: facts})
			e.ExplainAt(Proposal{Facts: facts}, t0)
		}
	})
}
