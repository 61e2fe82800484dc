package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/robfig/cron/v3"
)

// Policies holds the policies applied to actions.
type Policies struct {
	Default   Requirement    `yaml:"default" doc:"Requirement when no approval rule matches. With from empty: 1 approval from role:approver."`
	Approvals []ApprovalRule `yaml:"approvals" doc:"Approval rules, tried in order: the first rule that matches an action applies."`
	Freezes   []Freeze       `yaml:"freezes" doc:"Change-freeze windows: while one is active, matching actions may execute only through break-glass."`
	// BreakGlassReviewers is how many people other than the one who broke the
	// glass must complete a break-glass review.
	BreakGlassReviewers int    `yaml:"break_glass_reviewers" default:"2" minimum:"1" doc:"How many people other than the one who broke the glass must complete each break-glass review."`
	BreakGlassReview    string `yaml:"break_glass_review" default:"24h" doc:"Deadline for completing a break-glass review, as a duration like 24h."`
}

// ApprovalRule requires approvals for the actions it matches.
type ApprovalRule struct {
	Name        string        `yaml:"name" required:"true" pattern:"name" doc:"Unique rule name."`
	Match       PolicyMatch   `yaml:"match" doc:"Actions the rule applies to; every listed criterion must match, an empty criterion matches all."`
	Require     []Requirement `yaml:"require" doc:"Approval groups; every group must be satisfied (e.g. 1 from role:dba AND 1 from role:sre)."`
	Deny        int           `yaml:"deny" default:"1" minimum:"1" doc:"How many rejections reject the action."`
	Expires     string        `yaml:"expires" default:"24h" doc:"An approved action not executed within this duration expires (like 4h or 7d)."`
	AutoApprove bool          `yaml:"auto_approve" default:"false" doc:"Approve matching actions without people; meant for low-risk kinds."`
}

// PolicyMatch selects actions.
type PolicyMatch struct {
	Action  []string          `yaml:"action" pattern:"permission" doc:"Action kinds, such as fix.apply or deploy.gate; a trailing * matches a prefix."`
	Service []string          `yaml:"service" doc:"Service names."`
	Labels  map[string]string `yaml:"labels" doc:"Service labels that must all be present with these values."`
	Risk    []string          `yaml:"risk" enum:"low,medium,high,critical" doc:"Risk levels."`
	Tier    []int             `yaml:"tier" minimum:"1" maximum:"4" doc:"Service tiers."`
	Facts   string            `yaml:"facts" doc:"An expression over the plan's facts that must be true, e.g. rows_affected > 100 (expr-lang syntax)."`
}

// Requirement asks for a number of approvals from a set of principals.
type Requirement struct {
	Approvals int      `yaml:"approvals" json:"approvals" default:"1" minimum:"1" doc:"Number of distinct approvers needed."`
	From      []string `yaml:"from" json:"from" doc:"Who may approve: role:NAME or user:NAME entries (quote them inside {…} flow mappings)."`
}

// Freeze is a recurring change-freeze window.
type Freeze struct {
	Name     string   `yaml:"name" required:"true" pattern:"name" doc:"Unique freeze name."`
	Start    string   `yaml:"start" required:"true" doc:"When the window opens: a 5-field cron expression (e.g. \"0 18 * * 5\" for Fridays 18:00 UTC)."`
	Duration string   `yaml:"duration" required:"true" doc:"How long the window stays open, like 64h."`
	Services []string `yaml:"services" doc:"Services frozen; empty means all."`
	Actions  []string `yaml:"actions" pattern:"permission" doc:"Action kinds frozen; empty means all. A trailing * matches a prefix."`
}

// DefaultRequirement is the requirement when no rule matches.
func (p Policies) DefaultRequirement() Requirement {
	if len(p.Default.From) == 0 {
		return Requirement{Approvals: max(1, p.Default.Approvals), From: []string{"role:approver"}}
	}
	return p.Default
}

// ParseDuration parses Go durations plus a day suffix (7d).
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != d {
			return 0, fmt.Errorf("invalid duration %q: want a positive number of days like 7d, or a duration like 4h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("invalid duration %q: want a positive duration like 4h or 30m, or days like 7d", s)
	}
	return v, nil
}

// Expiry is the rule's approval expiry as a duration.
func (r ApprovalRule) Expiry() time.Duration {
	d, _ := ParseDuration(r.Expires)
	return d
}

// ReviewDeadline is the break-glass review deadline as a duration.
func (p Policies) ReviewDeadline() time.Duration {
	d, err := ParseDuration(p.BreakGlassReview)
	if err != nil {
		return 24 * time.Hour
	}
	return d
}

// Window returns the freeze's schedule and length.
func (f Freeze) Window() (cron.Schedule, time.Duration, error) {
	sched, err := cron.ParseStandard(f.Start)
	if err != nil {
		return nil, 0, err
	}
	d, err := ParseDuration(f.Duration)
	return sched, d, err
}

func (l *loader) validatePolicies(cfg *Config, roles, services []string) {
	users := make([]string, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		users = append(users, u.Name)
	}
	if len(cfg.Policies.Default.From) > 0 {
		l.validateRequirement(cfg.Policies.Default, "policies.default", roles, users)
	}
	if _, err := ParseDuration(cfg.Policies.BreakGlassReview); err != nil {
		l.errorf(l.at("policies.break_glass_review"), "%v", err)
	}
	first := map[string]int{}
	for i, r := range cfg.Policies.Approvals {
		path := fmt.Sprintf("policies.approvals[%d]", i)
		if r.Name != "" {
			if j, dup := first[r.Name]; dup {
				l.errorf(l.at(path+".name"), "duplicate approval rule %q (first defined at %s)", r.Name, l.at(fmt.Sprintf("policies.approvals[%d].name", j)))
			} else {
				first[r.Name] = i
			}
		}
		for k, s := range r.Match.Service {
			if !slices.Contains(services, s) {
				l.errorf(l.at(fmt.Sprintf("%s.match.service[%d]", path, k)), "unknown service %s%s", quoteShort(s), knownHint(s, services, "services"))
			}
		}
		if r.Match.Facts != "" {
			if _, err := expr.Compile(r.Match.Facts, expr.AllowUndefinedVariables(), expr.AsBool()); err != nil {
				l.errorf(l.at(path+".match.facts"), "invalid facts expression: %s", firstLine(err.Error()))
			}
		}
		if _, err := ParseDuration(r.Expires); err != nil {
			l.errorf(l.at(path+".expires"), "%v", err)
		}
		if len(r.Require) == 0 && !r.AutoApprove {
			l.errorf(l.at(path+".require"), "approval rule %q must require at least one approval (require is empty) or set auto_approve: true", r.Name)
		}
		for k, req := range r.Require {
			l.validateRequirement(req, fmt.Sprintf("%s.require[%d]", path, k), roles, users)
		}
	}
	firstFreeze := map[string]int{}
	for i, f := range cfg.Policies.Freezes {
		path := fmt.Sprintf("policies.freezes[%d]", i)
		if j, dup := firstFreeze[f.Name]; dup && f.Name != "" {
			l.errorf(l.at(path+".name"), "duplicate freeze %q (first defined at %s)", f.Name, l.at(fmt.Sprintf("policies.freezes[%d].name", j)))
		} else {
			firstFreeze[f.Name] = i
		}
		if strings.HasPrefix(strings.TrimSpace(f.Start), "@every") {
			l.errorf(l.at(path+".start"), "invalid start %s: @every has no fixed start time; use a cron expression like \"0 18 * * 5\"", quoteShort(f.Start))
		} else if f.Start != "" {
			if _, err := cron.ParseStandard(f.Start); err != nil {
				l.errorf(l.at(path+".start"), "invalid start %s: %v; want a cron expression like \"0 18 * * 5\"", quoteShort(f.Start), err)
			}
		}
		if f.Duration != "" {
			if _, err := ParseDuration(f.Duration); err != nil {
				l.errorf(l.at(path+".duration"), "%v", err)
			}
		}
		for k, s := range f.Services {
			if !slices.Contains(services, s) {
				l.errorf(l.at(fmt.Sprintf("%s.services[%d]", path, k)), "unknown service %s%s", quoteShort(s), knownHint(s, services, "services"))
			}
		}
	}
}

func (l *loader) validateRequirement(req Requirement, rpath string, roles, users []string) {
	if len(req.From) == 0 {
		l.errorf(l.at(rpath+".from"), "from must list at least one role:NAME or user:NAME")
		return
	}
	onlyUsers := true
	for m, from := range req.From {
		if from == "" {
			continue // reported while decoding
		}
		fp := l.at(fmt.Sprintf("%s.from[%d]", rpath, m))
		kind, name, _ := strings.Cut(from, ":")
		switch kind {
		case "role":
			onlyUsers = false
			if !slices.Contains(roles, name) {
				l.errorf(fp, "unknown role %s in from%s", quoteShort(name), knownHint(name, roles, "roles"))
			}
		case "user":
			if !slices.Contains(users, name) {
				l.errorf(fp, "unknown user %s in from%s", quoteShort(name), knownHint(name, users, "users"))
			}
		default:
			onlyUsers = false
			l.errorf(fp, "invalid from entry %s: want role:NAME or user:NAME", quoteShort(from))
		}
	}
	if onlyUsers && req.Approvals > len(req.From) {
		l.errorf(l.at(rpath+".approvals"), "requires %d approvals but from lists only %d %s", req.Approvals, len(req.From), plural(len(req.From), "user", "users"))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
