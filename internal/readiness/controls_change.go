package readiness

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

// Data and change controls: integrity checks, data changes, approval
// policy.

// checkHistory is how many runs of a check are read to find since when it
// has been failing.
const checkHistory = 50

// checkIntegrity: every database has a check, every check ran within
// check_max_age, and no check has been failing longer than its severity
// allows (check_fail_grace, check_warn_grace).
func checkIntegrity(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(svc.Databases) == 0 {
		return Result{Status: Unknown, Reason: "no databases configured",
			Fix: fmt.Sprintf("list the service's databases under services[%s].databases", svc.Name)}, nil
	}
	covered := map[string]int{}
	for _, c := range svc.Checks {
		covered[c.Database]++
	}
	var uncovered, never, stale, tooLong, failing []string
	for _, d := range svc.Databases {
		if covered[d.Name] == 0 {
			uncovered = append(uncovered, d.Name)
		}
	}
	res := Result{}
	for _, c := range svc.Checks {
		runs, err := en.e.Store.ListCheckRuns(ctx, store.CheckRunFilter{Service: svc.Name, Check: c.Name, Limit: checkHistory})
		if err != nil {
			return Result{}, err
		}
		if len(runs) == 0 {
			never = append(never, c.Name)
			continue
		}
		last := runs[0]
		ev := Evidence{Kind: "check", ID: strconv.FormatInt(last.ID, 10), At: last.StartedAt, Actor: last.Actor,
			Summary: fmt.Sprintf("check %s/%s %s, %d violations, %s ago", svc.Name, c.Name, last.Status, last.Violations, ago(en.now, last.StartedAt)),
			Link:    serviceLink(svc.Name) + "#checks"}
		if err := en.auditFor(ctx, &ev, "check.run", svc.Name+"/"+c.Name, "run_id", last.ID); err != nil {
			return Result{}, err
		}
		res.Evidence = append(res.Evidence, ev)
		if age := en.now.Sub(last.StartedAt); age > en.th.CheckMaxAge {
			stale = append(stale, fmt.Sprintf("%s (%s ago)", c.Name, fmtDuration(age)))
		}
		if last.Status == "pass" {
			continue
		}
		since := last.StartedAt
		for _, r := range runs {
			if r.Status == "pass" {
				break
			}
			since = r.StartedAt
		}
		grace := en.th.CheckFailGrace
		if c.Severity == "warn" && last.Status == "warn" {
			grace = en.th.CheckWarnGrace
		}
		desc := fmt.Sprintf("%s %s for %s", c.Name, last.Status, fmtDuration(en.now.Sub(since)))
		if en.now.Sub(since) > grace {
			tooLong = append(tooLong, desc+fmt.Sprintf(" (allowed %s)", fmtDuration(grace)))
		} else {
			failing = append(failing, desc)
		}
	}
	total := len(svc.Checks)
	var problems []string
	if len(uncovered) > 0 {
		problems = append(problems, fmt.Sprintf("%s without checks: %s", plural(len(uncovered), "database", "databases"), strings.Join(uncovered, ", ")))
	}
	if len(never) > 0 {
		problems = append(problems, "never ran: "+strings.Join(never, ", "))
	}
	if len(stale) > 0 {
		problems = append(problems, fmt.Sprintf("not run within %s: %s", fmtDuration(en.th.CheckMaxAge), strings.Join(stale, ", ")))
	}
	if len(tooLong) > 0 {
		problems = append(problems, "failing too long: "+strings.Join(tooLong, ", "))
	}
	switch {
	case len(problems) > 0:
		res.Status = Fail
		res.Reason = fmt.Sprintf("%s on %s: %s", plural(total, "check", "checks"), plural(len(svc.Databases), "database", "databases"), strings.Join(problems, "; "))
		switch {
		case len(uncovered) > 0:
			res.Fix = "add at least one check per database under services[].checks (see docs/integrity.md)"
		case len(tooLong) > 0:
			res.Fix = fmt.Sprintf("repair the violations (steward check propose-fix %s/CHECK) or lower the check's severity if it is expected", svc.Name)
		default:
			res.Fix = "give every check a schedule of at most daily (schedule: \"@daily\") or run steward check run " + svc.Name
		}
	case len(failing) > 0:
		res.Status = Warn
		res.Reason = fmt.Sprintf("%s on %s ran within %s; failing within grace: %s", plural(total, "check", "checks"), plural(len(svc.Databases), "database", "databases"), fmtDuration(en.th.CheckMaxAge), strings.Join(failing, ", "))
		res.Fix = fmt.Sprintf("repair the violations before the grace ends (steward check propose-fix %s/CHECK)", svc.Name)
	default:
		res.Status = Pass
		res.Reason = fmt.Sprintf("%s on %s, all passing and run within %s", plural(total, "check", "checks"), plural(len(svc.Databases), "database", "databases"), fmtDuration(en.th.CheckMaxAge))
	}
	return res, nil
}

// dataChangeKinds are the action kinds that change data.
var dataChangeKinds = []string{"fix.apply", "fix.undo", "sql.exec"}

// checkDataChanges: every data change executed in change_period went
// through a fix or guarded SQL with at least one counted approval; changes
// through break-glass, and write access granted directly, are shown and
// make the control warn.
func checkDataChanges(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(svc.Databases) == 0 {
		return Result{Status: Unknown, Reason: "no databases configured, so no data changes to govern",
			Fix: fmt.Sprintf("list the service's databases under services[%s].databases", svc.Name)}, nil
	}
	period := en.th.ChangePeriod
	since := en.now.Add(-period)
	counts := map[string]int{}
	var unapproved, glass []string
	res := Result{}
	for _, kind := range dataChangeKinds {
		acts, err := en.e.Store.ListActions(ctx, store.ActionFilter{Service: svc.Name, Kind: kind, Limit: 1000})
		if err != nil {
			return Result{}, err
		}
		for _, a := range acts {
			if a.ExecutedAt == nil || a.ExecutedAt.Before(since) {
				continue
			}
			counts[kind]++
			votes, err := en.e.Store.ListApprovals(ctx, a.ID)
			if err != nil {
				return Result{}, err
			}
			var approvers []string
			for _, v := range votes {
				if v.Decision == "approve" && v.PlanHash == a.PlanHash && !slices.Contains(approvers, v.User) {
					approvers = append(approvers, v.User)
				}
			}
			how := "approved by " + strings.Join(approvers, ", ")
			switch {
			case a.BreakGlass:
				glass = append(glass, fmt.Sprintf("#%d", a.ID))
				how = "break-glass"
			case len(approvers) == 0:
				unapproved = append(unapproved, fmt.Sprintf("#%d (rule %s)", a.ID, a.Rule))
				how = "no approval (rule " + a.Rule + ")"
			}
			kindName := "fix"
			if kind == "sql.exec" {
				kindName = "sql"
			}
			ev := Evidence{Kind: kindName, ID: strconv.FormatInt(a.ID, 10), At: *a.ExecutedAt, Actor: a.Requester,
				Summary: fmt.Sprintf("%s #%d %s: %s; %s", kind, a.ID, a.State, firstLine(a.PlanSummary), how), Link: fmt.Sprintf("/actions/%d", a.ID)}
			if err := en.auditFor(ctx, &ev, "action.execute", fmt.Sprintf("action:%d", a.ID), "", 0); err != nil {
				return Result{}, err
			}
			res.Evidence = append(res.Evidence, ev)
		}
	}
	// Write access granted directly is a way around fixes and guarded SQL.
	writable := map[string]bool{}
	for _, p := range svc.Access {
		for _, g := range p.Grants {
			u := strings.ToUpper(g)
			if strings.Contains(u, "INSERT") || strings.Contains(u, "UPDATE") || strings.Contains(u, "DELETE") || strings.HasPrefix(u, "ALL") {
				writable[p.Database+"/"+p.Profile] = true
			}
		}
	}
	writes := 0
	if len(writable) > 0 {
		grants, err := en.e.Store.ListGrants(ctx, store.GrantFilter{Service: svc.Name, Limit: 10000})
		if err != nil {
			return Result{}, err
		}
		for _, g := range grants {
			if g.IssuedAt != nil && !g.IssuedAt.Before(since) && writable[g.Database+"/"+g.Profile] {
				writes++
			}
		}
	}
	total := counts["fix.apply"] + counts["fix.undo"] + counts["sql.exec"]
	summary := fmt.Sprintf("%s in %s: %s, %s, %d guarded SQL; %d break-glass; %s with write privileges",
		plural(total, "data change", "data changes"), fmtDuration(period), plural(counts["fix.apply"], "fix", "fixes"), plural(counts["fix.undo"], "undo", "undos"),
		counts["sql.exec"], len(glass), plural(writes, "grant", "grants"))
	switch {
	case len(unapproved) > 0:
		res.Status = Fail
		res.Reason = fmt.Sprintf("%s; without approval: %s", summary, strings.Join(unapproved, ", "))
		res.Fix = "require approvals for fix.apply, fix.undo and sql.exec (no auto_approve rule for them in policies.approvals)"
	case len(glass) > 0 || writes > 0:
		res.Status = Warn
		res.Reason = summary
		if len(glass) > 0 {
			res.Reason += " (" + strings.Join(glass, ", ") + ")"
		}
		res.Fix = "turn repeated break-glass changes and write grants into reviewed fixes (services[].fixes) so they go through approvals"
	default:
		res.Status = Pass
		res.Reason = summary + ", every change approved"
	}
	return res, nil
}

// coveredKinds are the action kinds control approval-policy requires a
// rule for.
var coveredKinds = []string{"deploy.gate", "fix.apply", "sql.exec"}

// policyEngine compiles the config's policies once per evaluation.
func policyEngine(en *env) (*policy.Engine, error) {
	v, err := en.memo("policy", func() (any, error) { return policy.New(en.cfg.Policies) })
	if err != nil {
		return nil, err
	}
	return v.(*policy.Engine), nil
}

// policyTestRun is the outcome of the configured policy test files.
type policyTestRun struct {
	files          []string
	passed, failed int
	failures       []string
	loadErr        error
}

func policyTests(en *env, eng *policy.Engine) *policyTestRun {
	v, _ := en.memo("policy-tests", func() (any, error) {
		run := &policyTestRun{files: en.cfg.Readiness.PolicyTestFiles(en.cfg.Path)}
		for _, f := range run.files {
			cases, err := policy.LoadTests(f)
			if err != nil {
				run.loadErr = err
				return run, nil
			}
			cases = policy.FillFromServices(cases, en.cfg.Services)
			for _, r := range policy.RunTests(eng, cases, en.now) {
				if r.Pass {
					run.passed++
				} else {
					run.failed++
					run.failures = append(run.failures, r.Name+" ("+r.Where+")")
				}
			}
		}
		return run, nil
	})
	return v.(*policyTestRun)
}

// representativeRisk is the risk an action of kind on svc is planned with:
// deploy.gate follows the tier (as the gate kind does); data changes are
// evaluated at every risk.
func representativeRisks(kind string, svc *config.Service) []string {
	if kind == "deploy.gate" {
		switch svc.Tier {
		case 1:
			return []string{"high"}
		case 2:
			return []string{"medium"}
		}
		return []string{"low"}
	}
	return []string{"low", "medium", "high", "critical"}
}

// checkApprovalPolicy: deploys and data changes of the service match an
// approval rule that needs people (not the default, not auto-approve), and
// the configured policy tests pass.
func checkApprovalPolicy(_ context.Context, en *env) (Result, error) {
	svc := en.svc
	eng, err := policyEngine(en)
	if err != nil {
		return Result{Status: Fail, Reason: "the approval policies do not compile: " + firstLine(err.Error()),
			Fix: "fix policies.approvals (steward validate shows where)"}, nil
	}
	res := Result{}
	var auto, uncovered, covered []string
	for _, kind := range coveredKinds {
		for _, risk := range representativeRisks(kind, svc) {
			p := policy.Proposal{Kind: kind, Service: svc.Name, Tier: svc.Tier, Labels: svc.Labels, Risk: risk,
				Facts: map[string]any{"rows_affected": 1}}
			r := eng.Match(p)
			label := kind + "@" + risk
			switch {
			case r.AutoApprove:
				auto = append(auto, fmt.Sprintf("%s (rule %s)", label, r.Name))
			case r.Name == policy.DefaultRuleName:
				uncovered = append(uncovered, label)
			default:
				covered = append(covered, fmt.Sprintf("%s→%s", label, r.Name))
			}
		}
	}
	n := len(auto) + len(uncovered) + len(covered)
	res.Evidence = append(res.Evidence, Evidence{Kind: "policy", At: en.now,
		Summary: fmt.Sprintf("%d of %d representative actions match a rule that needs approvers: %s", len(covered), n, strings.Join(covered, ", "))})
	tests := policyTests(en, eng)
	for _, f := range tests.files {
		res.Evidence = append(res.Evidence, Evidence{Kind: "policy-test", ID: filepath.Base(f), At: en.now, Summary: "policy test file " + f})
	}
	testSummary := fmt.Sprintf("policy tests %d passed, %d failed", tests.passed, tests.failed)
	switch {
	case len(auto) > 0 || len(uncovered) > 0:
		res.Status = Fail
		var parts []string
		if len(auto) > 0 {
			parts = append(parts, "auto-approved: "+strings.Join(auto, ", "))
		}
		if len(uncovered) > 0 {
			parts = append(parts, "no rule (default only): "+strings.Join(uncovered, ", "))
		}
		res.Reason = fmt.Sprintf("%d of %d representative actions not covered; %s; %s", len(auto)+len(uncovered), n, strings.Join(parts, "; "), testSummary)
		res.Fix = fmt.Sprintf("add rules to policies.approvals matching deploy.gate, fix.apply and sql.exec for %s that require approvers; check with steward policy test --kind KIND --service %s", svc.Name, svc.Name)
	case tests.loadErr != nil:
		res.Status = Fail
		res.Reason = "policy tests do not load: " + firstLine(tests.loadErr.Error())
		res.Fix = "fix the file named in readiness.policy_tests (steward policy test FILE shows the problems)"
	case tests.failed > 0:
		res.Status = Fail
		res.Reason = fmt.Sprintf("%s: %s", testSummary, strings.Join(tests.failures[:min(3, len(tests.failures))], ", "))
		res.Fix = "run steward policy test " + strings.Join(tests.files, " ") + " and fix the policy or the expectation"
	case len(tests.files) == 0:
		res.Status = Warn
		res.Reason = fmt.Sprintf("%d of %d representative actions need approvers; no policy tests configured", n, n)
		res.Fix = "list policy test files (e.g. examples/policy-tests/canaries.yaml) under readiness.policy_tests"
	default:
		res.Status = Pass
		res.Reason = fmt.Sprintf("%d of %d representative actions need approvers; %s in %s", n, n, testSummary, plural(len(tests.files), "file", "files"))
	}
	return res, nil
}
