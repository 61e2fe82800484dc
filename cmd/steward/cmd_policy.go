package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/policy"
)

func newPolicyCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test approval policies against proposed actions"}
	cmd.AddCommand(newPolicyTestCmd(g))
	return cmd
}

type policyTestOptions struct {
	Files     []string
	Kind      string
	Service   string
	Risk      string
	Requester string
	Facts     []string
	At        string
}

func (o *policyTestOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Kind, "kind", "", "evaluate one action of this kind (like deploy.gate or fix.apply) instead of test files")
	f.StringVar(&o.Service, "service", "", "service of the action; its tier and labels come from the config (with --kind)")
	f.StringVar(&o.Risk, "risk", "", "risk of the action: low, medium, high or critical (with --kind)")
	f.StringVar(&o.Requester, "requester", "", "user asking for the action (with --kind)")
	f.StringArrayVar(&o.Facts, "fact", nil, "plan fact KEY=VALUE (repeatable, with --kind); VALUE is JSON if it parses as JSON, else a string")
	f.StringVar(&o.At, "at", "", "evaluate at this RFC 3339 time instead of now (freeze windows, vote ages)")
}

func newPolicyTestCmd(g *globalOptions) *cobra.Command {
	o := &policyTestOptions{}
	cmd := &cobra.Command{
		Use:   "test [FILE...]",
		Short: "Run policy test files against the config's policies, or show how one proposed action is treated",
		Long: `Run policy test files (YAML cases with an action, votes and the expected
decision) against the policies of the config, printing PASS or FAIL per case;
exit 1 if any case fails. With --kind and --service instead of files, show
which rule applies to that action, what it requires and whether a change
freeze is active.`,
		Example: `  steward policy test policy-tests/*.yaml
  steward policy test --kind fix.apply --service shop --risk high --requester alice --fact rows_affected=500`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Files = args
			return runPolicyTest(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// policyFileResults are the results of one test file.
type policyFileResults struct {
	File    string          `json:"file"`
	Results []policy.Result `json:"results"`
}

// policyTestReport is the JSON output of a test-file run.
type policyTestReport struct {
	Files  []policyFileResults `json:"files"`
	Passed int                 `json:"passed"`
	Failed int                 `json:"failed"`
}

// policyExplainReport is the JSON output for one proposed action.
type policyExplainReport struct {
	Proposal policy.Proposal `json:"proposal"`
	Rule     policyRuleJSON  `json:"rule"`
	Decision policy.Decision `json:"decision"`
	Freeze   *policyFreeze   `json:"freeze"`
	Explain  string          `json:"explain"`
}

type policyRuleJSON struct {
	Name        string            `json:"name"`
	Groups      []policyGroupJSON `json:"groups"`
	Deny        int               `json:"deny"`
	Expiry      string            `json:"expiry"`
	AutoApprove bool              `json:"auto_approve"`
}

// policyGroupJSON is a config.Requirement with JSON names.
type policyGroupJSON struct {
	Approvals int      `json:"approvals"`
	From      []string `json:"from"`
}

type policyFreeze struct {
	Name  string    `json:"name"`
	Until time.Time `json:"until"`
}

func runPolicyTest(_ context.Context, g *globalOptions, o *policyTestOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	single := o.Kind != "" || o.Service != "" || o.Risk != "" || o.Requester != "" || len(o.Facts) > 0
	switch {
	case len(o.Files) > 0 && single:
		return usagef("give policy test files or --kind/--service for one action, not both")
	case len(o.Files) == 0 && !single:
		return usagef("nothing to test: give policy test files, or --kind and --service to see how one action is treated")
	case single && (o.Kind == "" || o.Service == ""):
		return usagef("--kind and --service are both needed to evaluate one action")
	}
	now := time.Now()
	if o.At != "" {
		t, err := time.Parse(time.RFC3339, o.At)
		if err != nil {
			return usagef("--at %q: want an RFC 3339 time like 2025-06-13T19:00:00Z", o.At)
		}
		now = t
	}
	cfg, err := g.loadConfig(false)
	if err != nil {
		return err
	}
	eng, err := policy.New(cfg.Policies)
	if err != nil {
		return usagef("%s: %v", cfg.Path, err)
	}
	if single {
		return runPolicyExplain(g, o, cfg, eng, now, out)
	}
	return runPolicyTestFiles(g, o, cfg, eng, now, out)
}

func runPolicyTestFiles(g *globalOptions, o *policyTestOptions, cfg *config.Config, eng *policy.Engine, now time.Time, out io.Writer) error {
	// Load every file first, so that all bad files are reported at once.
	cases := make([][]policy.Case, len(o.Files))
	var errs []error
	for i, file := range o.Files {
		c, err := policy.LoadTests(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cases[i] = policy.FillFromServices(c, cfg.Services)
	}
	if len(errs) > 0 {
		return usageError{fmt.Errorf("policy test files do not load:\n%w", errors.Join(errs...))}
	}
	var rep policyTestReport
	for i, file := range o.Files {
		res := policy.RunTests(eng, cases[i], now)
		for _, r := range res {
			if r.Pass {
				rep.Passed++
			} else {
				rep.Failed++
			}
		}
		rep.Files = append(rep.Files, policyFileResults{File: file, Results: res})
	}
	if g.json() {
		if err := printJSON(out, rep); err != nil {
			return err
		}
	} else {
		for _, f := range rep.Files {
			for _, r := range f.Results {
				if r.Pass {
					fmt.Fprintf(out, "PASS  %s\n", r.Name)
					continue
				}
				fmt.Fprintf(out, "FAIL  %s (%s)\n", r.Name, r.Where)
				for _, p := range r.Problems {
					fmt.Fprintf(out, "      %s\n", p)
				}
				fmt.Fprintf(out, "      decision: %s\n", policySummary(r.Got, r.Frozen))
			}
		}
		fmt.Fprintf(out, "%d passed, %d failed (%d %s)\n", rep.Passed, rep.Failed, len(rep.Files), policyPlural(len(rep.Files), "file", "files"))
	}
	if rep.Failed > 0 {
		return silentError{exitFailed}
	}
	return nil
}

// policySummary is one line about a decision, for a failed case.
func policySummary(d policy.Decision, frozen string) string {
	s := fmt.Sprintf("rule %s, %s", d.Rule, d.State)
	if d.AutoApproved {
		s += " (auto-approved)"
	}
	if d.Missing != "" {
		s += "; needs " + d.Missing
	}
	for _, ig := range d.Ignored {
		s += fmt.Sprintf("; ignored %s: %s", ig.User, ig.Reason)
	}
	if frozen != "" {
		s += "; frozen by " + frozen
	}
	return s
}

func runPolicyExplain(g *globalOptions, o *policyTestOptions, cfg *config.Config, eng *policy.Engine, now time.Time, out io.Writer) error {
	svc := cfg.Service(o.Service)
	if svc == nil {
		names := make([]string, len(cfg.Services))
		for i, s := range cfg.Services {
			names[i] = s.Name
		}
		return usagef("--service %q: no such service in %s (services: %s)", o.Service, cfg.Path, strings.Join(names, ", "))
	}
	if o.Risk != "" && !slices.Contains([]string{policy.RiskLow, policy.RiskMedium, policy.RiskHigh, policy.RiskCritical}, o.Risk) {
		return usagef("--risk %q: use low, medium, high or critical", o.Risk)
	}
	facts := map[string]any{}
	for _, kv := range o.Facts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("--fact %q: want KEY=VALUE, like rows_affected=500", kv)
		}
		facts[k] = parsePolicyFact(v)
	}
	p := policy.Proposal{Kind: o.Kind, Service: svc.Name, Tier: svc.Tier, Labels: svc.Labels, Risk: o.Risk,
		Facts: facts, Requester: o.Requester, PlanHash: "proposed"}
	explain := eng.ExplainAt(p, now)
	d := eng.Evaluate(p, nil, now)
	if g.json() {
		r := eng.Match(p)
		rep := policyExplainReport{Proposal: p, Decision: d, Explain: explain,
			Rule: policyRuleJSON{Name: r.Name, Groups: []policyGroupJSON{}, Deny: r.Deny, Expiry: policy.FormatDuration(r.Expiry), AutoApprove: r.AutoApprove}}
		for _, g := range r.Groups {
			rep.Rule.Groups = append(rep.Rule.Groups, policyGroupJSON{Approvals: g.Approvals, From: g.From})
		}
		if name, until, ok := eng.Frozen(p.Kind, p.Service, now); ok {
			rep.Freeze = &policyFreeze{Name: name, Until: until}
		}
		return printJSON(out, rep)
	}
	fmt.Fprint(out, explain)
	if d.State == policy.StatePending {
		fmt.Fprintf(out, "now:       pending: needs %s\n", d.Missing)
	} else {
		fmt.Fprintf(out, "now:       %s\n", d.State)
	}
	return nil
}

// parsePolicyFact reads a fact value: an integer, else JSON, else a string.
func parsePolicyFact(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	var js any
	if err := json.Unmarshal([]byte(v), &js); err == nil {
		return js
	}
	return v
}

func policyPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
