package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/stewardhq/steward/internal/config"
)

// Risk levels of an action, lowest first.
const (
	RiskLow      = "low"
	RiskMedium   = "medium"
	RiskHigh     = "high"
	RiskCritical = "critical"
)

// Decision states.
const (
	StatePending  = "pending"
	StateApproved = "approved"
	StateRejected = "rejected"
)

// Vote decisions.
const (
	Approve = "approve"
	Reject  = "reject"
)

// DefaultRuleName names the rule that applies when no approval rule matches.
const DefaultRuleName = "default"

// DefaultExpiry is how long approvals count when a rule does not say.
const DefaultExpiry = 24 * time.Hour

// Proposal is an action as the policy sees it.
type Proposal struct {
	Kind    string            `json:"kind"`
	Service string            `json:"service"`
	Tier    int               `json:"tier,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Risk is low, medium, high or critical.
	Risk  string         `json:"risk,omitempty"`
	Facts map[string]any `json:"facts,omitempty"`
	// Requester is the name of the user who asked for the action.
	Requester string `json:"requester,omitempty"`
	// PlanHash identifies the plan the approvals are for.
	PlanHash string `json:"plan_hash,omitempty"`
}

// Vote is one person's approval or rejection of a plan.
type Vote struct {
	User  string   `json:"user"`
	Roles []string `json:"roles,omitempty"`
	// Decision is "approve" or "reject".
	Decision string    `json:"decision"`
	PlanHash string    `json:"plan_hash,omitempty"`
	At       time.Time `json:"at"`
}

// Rule is an approval rule ready to evaluate.
type Rule struct {
	Name string `json:"name"`
	// Groups must all be satisfied, each by different people.
	Groups []config.Requirement `json:"groups"`
	// Deny is how many rejections reject the action.
	Deny int `json:"deny"`
	// Expiry is how long a vote counts.
	Expiry      time.Duration `json:"expiry"`
	AutoApprove bool          `json:"auto_approve"`
}

// Engine evaluates proposals against compiled policies. It is safe for
// concurrent use.
type Engine struct {
	rules   []rule
	def     Rule
	freezes []freeze
	// now is the clock of Explain.
	now func() time.Time
}

// rule is a compiled approval rule.
type rule struct {
	Rule
	match config.PolicyMatch
	facts *vm.Program
	// factNames are the facts the expression refers to; a proposal
	// missing one of them does not match.
	factNames []string
}

// New compiles the policies: facts expressions, freeze schedules and
// durations. Zero values get the config defaults (1 approval, deny 1,
// expiry 24h). It rejects what config validation rejects, so a policy that
// was not loaded through config.Load fails here rather than deciding wrong.
func New(p config.Policies) (*Engine, error) {
	e := &Engine{now: time.Now}
	def, err := normalizeGroups([]config.Requirement{p.DefaultRequirement()})
	if err != nil {
		return nil, fmt.Errorf("policies.default: %w", err)
	}
	e.def = Rule{Name: DefaultRuleName, Groups: def, Deny: 1, Expiry: DefaultExpiry}
	seen := map[string]bool{}
	for i, ar := range p.Approvals {
		r, err := compileRule(ar)
		if err != nil {
			return nil, fmt.Errorf("policies.approvals[%d] (%s): %w", i, ar.Name, err)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("policies.approvals[%d]: duplicate rule name %q", i, r.Name)
		}
		seen[r.Name] = true
		e.rules = append(e.rules, r)
	}
	for i, f := range p.Freezes {
		fz, err := compileFreeze(f)
		if err != nil {
			return nil, fmt.Errorf("policies.freezes[%d] (%s): %w", i, f.Name, err)
		}
		e.freezes = append(e.freezes, fz)
	}
	return e, nil
}

func compileRule(ar config.ApprovalRule) (rule, error) {
	if ar.Name == "" {
		return rule{}, fmt.Errorf("rule has no name")
	}
	if ar.Name == DefaultRuleName {
		return rule{}, fmt.Errorf("rule name %q is reserved for the rule that applies when none matches", DefaultRuleName)
	}
	groups, err := normalizeGroups(ar.Require)
	if err != nil {
		return rule{}, err
	}
	if len(groups) == 0 && !ar.AutoApprove {
		return rule{}, fmt.Errorf("rule %q requires no approvals and is not auto_approve", ar.Name)
	}
	deny := ar.Deny
	if deny < 0 {
		return rule{}, fmt.Errorf("deny %d: want at least 1", deny)
	}
	deny = max(deny, 1)
	expiry := DefaultExpiry
	if ar.Expires != "" {
		if expiry, err = config.ParseDuration(ar.Expires); err != nil {
			return rule{}, fmt.Errorf("expires: %w", err)
		}
	}
	r := rule{
		Rule:  Rule{Name: ar.Name, Groups: groups, Deny: deny, Expiry: expiry, AutoApprove: ar.AutoApprove},
		match: ar.Match,
	}
	for _, t := range ar.Match.Risk {
		if !slices.Contains([]string{RiskLow, RiskMedium, RiskHigh, RiskCritical}, t) {
			return rule{}, fmt.Errorf("match.risk: unknown risk level %q: want low, medium, high or critical", t)
		}
	}
	if ar.Match.Facts != "" {
		// Without an expr.Env every name is resolved at run time from
		// the facts map; AllowUndefinedVariables says so explicitly and
		// matches the check config validation makes.
		prog, err := expr.Compile(ar.Match.Facts, expr.AllowUndefinedVariables(), expr.AsBool())
		if err != nil {
			return rule{}, fmt.Errorf("match.facts: invalid expression: %s", firstLine(err.Error()))
		}
		tree, err := parser.Parse(ar.Match.Facts)
		if err != nil {
			return rule{}, fmt.Errorf("match.facts: invalid expression: %s", firstLine(err.Error()))
		}
		r.facts = prog
		r.factNames = referencedFacts(tree.Node)
	}
	return r, nil
}

// normalizeGroups validates requirements and fills the default of 1 approval.
func normalizeGroups(reqs []config.Requirement) ([]config.Requirement, error) {
	out := make([]config.Requirement, 0, len(reqs))
	for i, req := range reqs {
		if req.Approvals < 0 {
			return nil, fmt.Errorf("require[%d]: approvals %d: want at least 1", i, req.Approvals)
		}
		if len(req.From) == 0 {
			return nil, fmt.Errorf("require[%d]: from must list at least one role:NAME or user:NAME", i)
		}
		for _, f := range req.From {
			kind, name, _ := strings.Cut(f, ":")
			if (kind != "role" && kind != "user") || name == "" {
				return nil, fmt.Errorf("require[%d]: invalid from entry %q: want role:NAME or user:NAME", i, f)
			}
		}
		out = append(out, config.Requirement{Approvals: max(req.Approvals, 1), From: slices.Clone(req.From)})
	}
	return out, nil
}

// referencedFacts returns the free variables of an expression: identifiers
// that are not let-bound names, function names or $env.
func referencedFacts(node ast.Node) []string {
	c := &identCollector{bound: map[string]bool{"$env": true}}
	ast.Walk(&node, c)
	var out []string
	for _, n := range c.names {
		if !c.bound[n] && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

type identCollector struct {
	names []string
	bound map[string]bool
}

func (c *identCollector) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		c.names = append(c.names, n.Value)
	case *ast.VariableDeclaratorNode:
		c.bound[n.Name] = true
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			c.bound[id.Value] = true
		}
	}
}

// Match returns the first rule that matches p, or the default rule.
func (e *Engine) Match(p Proposal) Rule {
	r, _ := e.match(p)
	return r
}

// match returns the applying rule and, for each rule tried before it, why
// it did not match.
func (e *Engine) match(p Proposal) (Rule, []string) {
	var misses []string
	for _, r := range e.rules {
		why := r.mismatch(p)
		if why == "" {
			return r.clone(), misses
		}
		misses = append(misses, fmt.Sprintf("%s: %s", r.Name, why))
	}
	return e.def.clone(), misses
}

func (r Rule) clone() Rule {
	r.Groups = slices.Clone(r.Groups)
	for i := range r.Groups {
		r.Groups[i].From = slices.Clone(r.Groups[i].From)
	}
	return r
}

// mismatch says why p does not match r, or "" when it does.
func (r rule) mismatch(p Proposal) string {
	m := r.match
	if len(m.Action) > 0 && !kindMatches(m.Action, p.Kind) {
		return fmt.Sprintf("action %s is not %s", orNone(p.Kind), strings.Join(m.Action, " or "))
	}
	if len(m.Service) > 0 && !slices.Contains(m.Service, p.Service) {
		return fmt.Sprintf("service %s is not %s", orNone(p.Service), strings.Join(m.Service, " or "))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		got, ok := p.Labels[k]
		if !ok {
			return fmt.Sprintf("label %s is not set (want %s)", k, m.Labels[k])
		}
		if got != m.Labels[k] {
			return fmt.Sprintf("label %s is %s, not %s", k, got, m.Labels[k])
		}
	}
	if len(m.Risk) > 0 && !slices.Contains(m.Risk, p.Risk) {
		return fmt.Sprintf("risk %s is not %s", orNone(p.Risk), strings.Join(m.Risk, " or "))
	}
	if len(m.Tier) > 0 && !slices.Contains(m.Tier, p.Tier) {
		tiers := make([]string, len(m.Tier))
		for i, t := range m.Tier {
			tiers[i] = fmt.Sprint(t)
		}
		return fmt.Sprintf("tier %d is not %s", p.Tier, strings.Join(tiers, " or "))
	}
	if r.facts != nil {
		return r.factsMismatch(p.Facts)
	}
	return ""
}

// factsMismatch evaluates the facts expression. A fact the expression
// names but the plan lacks, a run-time error or a non-true result all mean
// no match; nothing here panics.
func (r rule) factsMismatch(facts map[string]any) (why string) {
	for _, name := range r.factNames {
		if _, ok := facts[name]; !ok {
			return fmt.Sprintf("facts: the plan has no fact %q (%s)", name, r.match.Facts)
		}
	}
	env := make(map[string]any, len(facts))
	for k, v := range facts {
		env[k] = v
	}
	defer func() {
		if p := recover(); p != nil {
			why = fmt.Sprintf("facts: %s failed: %v", r.match.Facts, p)
		}
	}()
	out, err := expr.Run(r.facts, env)
	if err != nil {
		return fmt.Sprintf("facts: %s failed: %s", r.match.Facts, firstLine(err.Error()))
	}
	if b, ok := out.(bool); !ok || !b {
		return fmt.Sprintf("facts: %s is false", r.match.Facts)
	}
	return ""
}

// kindMatches reports whether kind matches one of the patterns: an exact
// kind, "*", or a prefix ending in "*" (fix.* matches fix.apply).
func kindMatches(patterns []string, kind string) bool {
	for _, pat := range patterns {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok {
			if strings.HasPrefix(kind, prefix) {
				return true
			}
		} else if pat == kind {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
