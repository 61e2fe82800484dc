package policy

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/stewardhq/steward/internal/config"
)

// A policy test file holds cases, each a proposed action, the votes cast on
// it and the decision the policy must reach:
//
//	cases:
//	  - name: self-approval is refused
//	    at: 2025-06-13T19:00:00Z        # optional; default: the run's time
//	    action: {kind: deploy.gate, service: shop, tier: 1, risk: medium,
//	             requester: alice, facts: {rows_affected: 3}}
//	    votes:
//	      - {user: alice, roles: [approver]}            # decision defaults to approve
//	      - {user: bob, roles: [sre], decision: reject, age: 5h, stale: true}
//	    expect: {rule: deploys, state: pending, ignored: [alice]}
//
// Run against a config (FillFromServices), an action without tier or labels
// takes those of its service. A vote is cast age ago (default: at the case's time) for the action's
// plan, or for an older plan when stale is true. The expectations that are
// given are checked; those left out are not. See Expect.

// maxTestFileSize bounds what LoadTests reads.
const maxTestFileSize = 4 << 20

// defaultPlanHash is the plan hash of a test action that names none.
const defaultPlanHash = "plan-under-test"

// Case is one policy test case.
type Case struct {
	Name string `json:"name"`
	// File and Line say where the case is defined.
	File string `json:"file"`
	Line int    `json:"line"`
	// At is when the case is evaluated; zero means the time given to
	// RunTests.
	At       time.Time  `json:"at,omitzero"`
	Proposal Proposal   `json:"proposal"`
	Votes    []TestVote `json:"votes,omitempty"`
	Expect   Expect     `json:"expect"`
}

// TestVote is a vote in a test case.
type TestVote struct {
	User     string   `json:"user"`
	Roles    []string `json:"roles,omitempty"`
	Decision string   `json:"decision"`
	// Age is how long before the case's time the vote was cast.
	Age time.Duration `json:"age,omitempty"`
	// Stale votes are for an earlier plan than the action's.
	Stale bool `json:"stale,omitempty"`
}

// Expect is what a case must produce; nil fields are not checked.
type Expect struct {
	Rule         *string `json:"rule,omitempty"`
	State        *string `json:"state,omitempty"`
	AutoApproved *bool   `json:"auto_approved,omitempty"`
	// Ignored is the exact set of users with a vote that did not count.
	Ignored *[]string `json:"ignored,omitempty"`
	// Reasons maps a user to text their ignored vote's reason must contain.
	Reasons map[string]string `json:"reasons,omitempty"`
	// Counted is the exact set of users counted towards the groups.
	Counted    *[]string `json:"counted,omitempty"`
	Rejections *int      `json:"rejections,omitempty"`
	// Missing is the exact text of what is still needed ("" for nothing).
	Missing *string `json:"missing,omitempty"`
	// Frozen names the freeze that must be active, "" for none.
	Frozen *string `json:"frozen,omitempty"`
}

// The YAML shapes, decoded strictly.
type (
	fileYAML struct {
		Cases []caseYAML `yaml:"cases"`
	}
	caseYAML struct {
		Name   string     `yaml:"name"`
		At     string     `yaml:"at"`
		Action actionYAML `yaml:"action"`
		Votes  []voteYAML `yaml:"votes"`
		Expect expectYAML `yaml:"expect"`
	}
	actionYAML struct {
		Kind      string            `yaml:"kind"`
		Service   string            `yaml:"service"`
		Tier      int               `yaml:"tier"`
		Labels    map[string]string `yaml:"labels"`
		Risk      string            `yaml:"risk"`
		Requester string            `yaml:"requester"`
		Facts     map[string]any    `yaml:"facts"`
		Plan      string            `yaml:"plan"`
	}
	voteYAML struct {
		User     string   `yaml:"user"`
		Roles    []string `yaml:"roles"`
		Decision string   `yaml:"decision"`
		Age      string   `yaml:"age"`
		Stale    bool     `yaml:"stale"`
	}
	expectYAML struct {
		Rule         *string           `yaml:"rule"`
		State        *string           `yaml:"state"`
		AutoApproved *bool             `yaml:"auto_approved"`
		Ignored      *[]string         `yaml:"ignored"`
		Reasons      map[string]string `yaml:"reasons"`
		Counted      *[]string         `yaml:"counted"`
		Rejections   *int              `yaml:"rejections"`
		Missing      *string           `yaml:"missing"`
		Frozen       *string           `yaml:"frozen"`
	}
)

// FileError is a problem in a policy test file.
type FileError struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
	Msg  string `json:"message"`
}

// Error formats e as FILE:LINE:COL: msg, or FILE: msg without a position.
func (e FileError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// FileErrors are all the problems found in a policy test file.
type FileErrors []FileError

// Error joins the errors, one a line.
func (es FileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// LoadTests reads a policy test file, decoding it strictly (unknown keys
// and duplicate keys are errors) and checking every case. A file that does
// not load gives FileErrors naming file:line:col where the position is
// known, all problems at once where they can be found.
func LoadTests(path string) ([]Case, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, FileErrors{{File: path, Msg: fmt.Sprintf("read policy tests: %v", err)}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTestFileSize+1))
	if err != nil {
		return nil, FileErrors{{File: path, Msg: fmt.Sprintf("read policy tests: %v", err)}}
	}
	if len(data) > maxTestFileSize {
		return nil, FileErrors{{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", maxTestFileSize)}}
	}
	return ParseTests(path, data)
}

// ParseTests is LoadTests for a file already in memory; filename names it
// in errors.
func ParseTests(filename string, data []byte) (_ []Case, err error) {
	defer func() {
		// go-yaml v1.19 can panic on some malformed input (found by
		// FuzzParseTests); that is a bad file, not a crash.
		if p := recover(); p != nil {
			err = FileErrors{{File: filename, Msg: fmt.Sprintf("malformed YAML: the parser failed (%v)", p)}}
		}
	}()
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, FileErrors{yamlError(filename, err)}
	}
	var raw fileYAML
	if err := yaml.UnmarshalWithOptions(data, &raw, yaml.Strict()); err != nil {
		return nil, FileErrors{yamlError(filename, err)}
	}
	l := &testLoader{filename: filename, file: file}
	cases := l.cases(raw)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	return cases, nil
}

// yamlError turns a go-yaml error into a FileError with its position.
func yamlError(filename string, err error) FileError {
	var ye yaml.Error
	if errors.As(err, &ye) {
		fe := FileError{File: filename, Msg: ye.GetMessage()}
		var te *yaml.TypeError
		if errors.As(err, &te) && te.DstType != nil && te.SrcType != nil {
			// The library's message names our Go types; say it in YAML terms.
			fe.Msg = fmt.Sprintf("wrong type: want %s, got %s", yamlKind(te.DstType), yamlKind(te.SrcType))
		}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			fe.Line, fe.Col = tk.Position.Line, tk.Position.Column
		}
		return fe
	}
	return FileError{File: filename, Msg: firstLine(err.Error())}
}

// yamlKind names a Go type the way a YAML author thinks of it.
func yamlKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Int32, reflect.Uint32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return yamlKind(t.Elem())
	}
	return t.String()
}

type testLoader struct {
	filename string
	file     *ast.File
	errs     FileErrors
}

// at returns the position of the value at a YAML path such as
// $.cases[0].votes[1].age, or of the nearest enclosing value present.
func (l *testLoader) at(path string) (line, col int) {
	for path != "$" && path != "" {
		if p, err := yaml.PathString(path); err == nil {
			if n, err := p.FilterFile(l.file); err == nil && n != nil {
				if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && !m.IsFlowStyle {
					// A block mapping starts at its first key.
					n = m.Values[0].Key
				}
				if tk := n.GetToken(); tk != nil && tk.Position != nil {
					return tk.Position.Line, tk.Position.Column
				}
			}
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			break
		}
		path = path[:i]
	}
	return 0, 0
}

func (l *testLoader) errorf(path, format string, args ...any) {
	line, col := l.at(path)
	l.errs = append(l.errs, FileError{File: l.filename, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

var (
	risks     = []string{RiskLow, RiskMedium, RiskHigh, RiskCritical}
	states    = []string{StatePending, StateApproved, StateRejected}
	decisions = []string{Approve, Reject}
)

func (l *testLoader) cases(raw fileYAML) []Case {
	if len(raw.Cases) == 0 {
		l.errorf("$.cases", "no test cases: write cases: with at least one case")
		return nil
	}
	first := map[string]int{}
	out := make([]Case, 0, len(raw.Cases))
	for i, rc := range raw.Cases {
		path := fmt.Sprintf("$.cases[%d]", i)
		line, _ := l.at(path)
		c := Case{Name: rc.Name, File: l.filename, Line: line}
		if rc.Name == "" {
			l.errorf(path, "case %d has no name", i+1)
		} else if j, dup := first[rc.Name]; dup {
			l.errorf(path+".name", "duplicate case name %q (first at case %d)", rc.Name, j+1)
		} else {
			first[rc.Name] = i
		}
		if rc.At != "" {
			t, err := time.Parse(time.RFC3339, rc.At)
			if err != nil {
				l.errorf(path+".at", "at %q: want an RFC 3339 time like 2025-06-13T19:00:00Z", rc.At)
			}
			c.At = t
		}
		a := rc.Action
		if a.Kind == "" {
			l.errorf(path+".action", "action.kind is required (like deploy.gate or fix.apply)")
		}
		if a.Risk != "" && !slices.Contains(risks, a.Risk) {
			l.errorf(path+".action.risk", "unknown risk %q: want one of %s", a.Risk, strings.Join(risks, ", "))
		}
		if a.Tier < 0 || a.Tier > 4 {
			l.errorf(path+".action.tier", "tier %d: want 1 to 4", a.Tier)
		}
		plan := a.Plan
		if plan == "" {
			plan = defaultPlanHash
		}
		c.Proposal = Proposal{Kind: a.Kind, Service: a.Service, Tier: a.Tier, Labels: a.Labels, Risk: a.Risk,
			Facts: a.Facts, Requester: a.Requester, PlanHash: plan}
		for k, rv := range rc.Votes {
			vpath := fmt.Sprintf("%s.votes[%d]", path, k)
			v := TestVote{User: rv.User, Roles: rv.Roles, Decision: rv.Decision, Stale: rv.Stale}
			if v.User == "" {
				l.errorf(vpath, "vote %d has no user", k+1)
			}
			if v.Decision == "" {
				v.Decision = Approve
			} else if !slices.Contains(decisions, v.Decision) {
				l.errorf(vpath+".decision", "unknown decision %q: want approve or reject", v.Decision)
			}
			if rv.Age != "" {
				d, err := config.ParseDuration(rv.Age)
				if err != nil {
					l.errorf(vpath+".age", "age: %v", err)
				}
				v.Age = d
			}
			c.Votes = append(c.Votes, v)
		}
		c.Expect = l.expect(path+".expect", rc.Expect)
		out = append(out, c)
	}
	return out
}

func (l *testLoader) expect(path string, e expectYAML) Expect {
	out := Expect(e)
	if e.Rule == nil && e.State == nil && e.AutoApproved == nil && e.Ignored == nil &&
		len(e.Reasons) == 0 && e.Counted == nil && e.Rejections == nil && e.Missing == nil && e.Frozen == nil {
		l.errorf(path, "expect is empty: a case must check something, at least its state")
	}
	if e.State != nil && !slices.Contains(states, *e.State) {
		l.errorf(path+".state", "unknown state %q: want one of %s", *e.State, strings.Join(states, ", "))
	}
	return out
}

// Result is the outcome of one case.
type Result struct {
	Name string `json:"name"`
	// Where is file:line of the case.
	Where string   `json:"where"`
	Pass  bool     `json:"pass"`
	Got   Decision `json:"got"`
	// Frozen names the active freeze, if any.
	Frozen   string   `json:"frozen,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// stalePlan marks the plan hash of a stale vote.
const stalePlan = "~earlier-plan"

// RunTests evaluates every case with e at its own time, or now when it has
// none, and compares the outcome with its expectations.
func RunTests(e *Engine, cases []Case, now time.Time) []Result {
	out := make([]Result, 0, len(cases))
	for _, c := range cases {
		at := now
		if !c.At.IsZero() {
			at = c.At
		}
		votes := make([]Vote, len(c.Votes))
		for i, tv := range c.Votes {
			plan := c.Proposal.PlanHash
			if tv.Stale {
				plan += stalePlan
			}
			votes[i] = Vote{User: tv.User, Roles: tv.Roles, Decision: tv.Decision, PlanHash: plan, At: at.Add(-tv.Age)}
		}
		d := e.Evaluate(c.Proposal, votes, at)
		res := Result{Name: c.Name, Where: fmt.Sprintf("%s:%d", c.File, c.Line), Got: d}
		frozen, _, _ := e.Frozen(c.Proposal.Kind, c.Proposal.Service, at)
		res.Frozen = frozen
		res.Problems = c.Expect.check(d, frozen)
		res.Pass = len(res.Problems) == 0
		out = append(out, res)
	}
	return out
}

// check lists how d and frozen differ from the expectations.
func (x Expect) check(d Decision, frozen string) []string {
	var probs []string
	eq := func(what, got, want string) {
		if got != want {
			probs = append(probs, fmt.Sprintf("%s: got %q, want %q", what, got, want))
		}
	}
	if x.Rule != nil {
		eq("rule", d.Rule, *x.Rule)
	}
	if x.State != nil {
		eq("state", d.State, *x.State)
	}
	if x.AutoApproved != nil && d.AutoApproved != *x.AutoApproved {
		probs = append(probs, fmt.Sprintf("auto_approved: got %v, want %v", d.AutoApproved, *x.AutoApproved))
	}
	if x.Missing != nil {
		eq("missing", d.Missing, *x.Missing)
	}
	if x.Frozen != nil {
		eq("frozen", frozen, *x.Frozen)
	}
	if x.Rejections != nil && d.Rejections != *x.Rejections {
		probs = append(probs, fmt.Sprintf("rejections: got %d, want %d", d.Rejections, *x.Rejections))
	}
	ignored := map[string][]string{}
	var ignoredUsers []string
	for _, ig := range d.Ignored {
		if _, ok := ignored[ig.User]; !ok {
			ignoredUsers = append(ignoredUsers, ig.User)
		}
		ignored[ig.User] = append(ignored[ig.User], ig.Reason)
	}
	if x.Ignored != nil {
		if p := sameSet("ignored", ignoredUsers, *x.Ignored); p != "" {
			probs = append(probs, p)
		}
	}
	for _, user := range slices.Sorted(maps.Keys(x.Reasons)) {
		want := x.Reasons[user]
		if !slices.ContainsFunc(ignored[user], func(r string) bool { return strings.Contains(r, want) }) {
			probs = append(probs, fmt.Sprintf("reasons: no ignored vote of %s says %q (got %q)", user, want, ignored[user]))
		}
	}
	if x.Counted != nil {
		var counted []string
		for _, g := range d.Groups {
			counted = append(counted, g.Counted...)
		}
		if p := sameSet("counted", counted, *x.Counted); p != "" {
			probs = append(probs, p)
		}
	}
	return probs
}

func sameSet(what string, got, want []string) string {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	g, w = slices.Compact(g), slices.Compact(w)
	if slices.Equal(g, w) {
		return ""
	}
	return fmt.Sprintf("%s: got %v, want %v", what, g, w)
}

// FillFromServices gives each case's action the tier and labels of its
// service in services, where the case does not set them itself, so that
// cases run against a config see services as the pipeline does.
func FillFromServices(cases []Case, services []config.Service) []Case {
	out := slices.Clone(cases)
	for i := range out {
		p := &out[i].Proposal
		j := slices.IndexFunc(services, func(s config.Service) bool { return s.Name == p.Service })
		if j < 0 {
			continue
		}
		if p.Tier == 0 {
			p.Tier = services[j].Tier
		}
		if p.Labels == nil {
			p.Labels = services[j].Labels
		}
	}
	return out
}
