package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Explain describes, for a person, how the policy treats p right now: the
// rule that matched and why the rules before it did not, what it requires,
// the deny threshold, the expiry, auto-approval and any active freeze.
func (e *Engine) Explain(p Proposal) string {
	return e.ExplainAt(p, e.now())
}

// ExplainAt is Explain at a given time, for the freeze check.
func (e *Engine) ExplainAt(p Proposal, now time.Time) string {
	var b strings.Builder
	r, misses := e.match(p)
	fmt.Fprintf(&b, "action:    %s\n", describe(p))
	for _, m := range misses {
		fmt.Fprintf(&b, "skipped:   %s\n", m)
	}
	if r.Name == DefaultRuleName {
		fmt.Fprintf(&b, "rule:      %s (no approval rule matched)\n", r.Name)
	} else {
		fmt.Fprintf(&b, "rule:      %s\n", r.Name)
	}
	switch {
	case r.AutoApprove:
		fmt.Fprintf(&b, "requires:  nothing: approved automatically (auto_approve)\n")
	default:
		parts := make([]string, len(r.Groups))
		for i, g := range r.Groups {
			parts[i] = fmt.Sprintf("%d %s from %s", g.Approvals, plural(g.Approvals, "approval", "approvals"), strings.Join(g.From, " or "))
		}
		fmt.Fprintf(&b, "requires:  %s\n", strings.Join(parts, " AND "))
		if len(r.Groups) > 1 {
			fmt.Fprintf(&b, "           each person counts for one group only, whatever roles they hold\n")
		}
		if p.Requester != "" {
			fmt.Fprintf(&b, "           the requester %s cannot approve\n", p.Requester)
		}
	}
	fmt.Fprintf(&b, "deny:      %d %s %s the action\n", r.Deny, plural(r.Deny, "rejection", "rejections"), plural(r.Deny, "rejects", "reject"))
	fmt.Fprintf(&b, "expiry:    votes older than %s do not count\n", FormatDuration(r.Expiry))
	fmt.Fprintf(&b, "auto:      %s\n", yesNo(r.AutoApprove))
	if name, until, ok := e.Frozen(p.Kind, p.Service, now); ok {
		fmt.Fprintf(&b, "freeze:    %s is active until %s: only break-glass may execute\n", name, until.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(&b, "freeze:    none active at %s\n", now.UTC().Format(time.RFC3339))
	}
	return b.String()
}

func describe(p Proposal) string {
	var attrs []string
	if p.Tier != 0 {
		attrs = append(attrs, fmt.Sprintf("tier %d", p.Tier))
	}
	if p.Risk != "" {
		attrs = append(attrs, "risk "+p.Risk)
	}
	if p.Requester != "" {
		attrs = append(attrs, "requested by "+p.Requester)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
		attrs = append(attrs, fmt.Sprintf("label %s=%s", k, p.Labels[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(p.Facts)) {
		attrs = append(attrs, fmt.Sprintf("fact %s=%v", k, p.Facts[k]))
	}
	s := orNone(p.Kind) + " on " + orNone(p.Service)
	if len(attrs) > 0 {
		s += " (" + strings.Join(attrs, ", ") + ")"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
