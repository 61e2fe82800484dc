package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// Decision is the policy's verdict on a proposal and its votes.
type Decision struct {
	// Rule names the rule that applied.
	Rule string `json:"rule"`
	// State is pending, approved or rejected.
	State        string `json:"state"`
	AutoApproved bool   `json:"auto_approved,omitempty"`
	// Groups reports each approval group of the rule and who counts for it.
	Groups []GroupStatus `json:"groups"`
	// Missing says what is still needed while the state is pending, like
	// "1 more approval from role:dba; 1 more from role:sre".
	Missing string `json:"missing,omitempty"`
	// Ignored lists the votes that did not count, and why.
	Ignored []Ignored `json:"ignored,omitempty"`
	// Rejections is the number of rejections that count.
	Rejections int `json:"rejections"`
}

// GroupStatus is one approval group of a rule.
type GroupStatus struct {
	Need int      `json:"need"`
	From []string `json:"from"`
	// Counted are the users counted for this group; each user counts for
	// at most one group.
	Counted []string `json:"counted"`
}

// Ignored is a vote that does not count.
type Ignored struct {
	User   string `json:"user"`
	Reason string `json:"reason"`
}

// Reasons a vote is ignored. The rest (plan changed, expired, not eligible)
// are built from these prefixes and details.
const (
	reasonSelfApprove = "requester cannot approve their own action"
	reasonSelfReject  = "requester cannot reject their own action; cancel it instead"
	reasonDuplicate   = "counted once (already counted)"
	// ReasonNotEligible starts the reason of a vote by someone no group of
	// the rule accepts.
	ReasonNotEligible = "not eligible"
)

// Evaluate decides the state of proposal p given the votes cast so far.
//
//   - The requester's own votes never count.
//   - Only votes for p.PlanHash count: a re-planned action loses its votes.
//   - Votes older than the rule's expiry (now - At > Expiry) do not count.
//   - A vote counts only from someone eligible for at least one group.
//   - Each person counts once: their latest valid vote is the one that
//     counts, and they fill at most one group slot even when they hold
//     several roles. Approvers are assigned to groups by maximum bipartite
//     matching, so all groups are satisfied whenever some assignment
//     satisfies them.
//   - Rejections that count reject the action when they reach the rule's
//     deny threshold; rejection wins over approval.
//   - An auto-approve rule approves without votes (unless rejected).
func (e *Engine) Evaluate(p Proposal, votes []Vote, now time.Time) Decision {
	r, _ := e.match(p)
	d := Decision{Rule: r.Name, State: StatePending, Groups: make([]GroupStatus, len(r.Groups))}
	for i, g := range r.Groups {
		d.Groups[i] = GroupStatus{Need: g.Approvals, From: g.From, Counted: []string{}}
	}

	reasons := make([]string, len(votes))
	latest := map[string]int{} // user -> index of their latest valid vote
	for i, v := range votes {
		if reasons[i] = r.voteProblem(p, v, now); reasons[i] != "" {
			continue
		}
		j, ok := latest[v.User]
		switch {
		case !ok:
			latest[v.User] = i
		case v.At.Before(votes[j].At):
			reasons[i] = reasonDuplicate
		default: // later, or equally old and cast after: the later one wins
			reasons[j] = reasonDuplicate
			latest[v.User] = i
		}
	}
	for i, why := range reasons {
		if why != "" {
			d.Ignored = append(d.Ignored, Ignored{User: votes[i].User, Reason: why})
		}
	}

	var approvers []Vote
	for _, i := range latest {
		switch votes[i].Decision {
		case Approve:
			approvers = append(approvers, votes[i])
		case Reject:
			d.Rejections++
		}
	}
	slices.SortFunc(approvers, func(a, b Vote) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.User, b.User))
	})
	for a, g := range assign(r.Groups, approvers) {
		if g >= 0 {
			d.Groups[g].Counted = append(d.Groups[g].Counted, approvers[a].User)
		}
	}

	switch {
	case d.Rejections >= r.Deny:
		d.State = StateRejected
	case r.AutoApprove:
		d.State, d.AutoApproved = StateApproved, true
	default:
		d.Missing = missing(d.Groups)
		if d.Missing == "" {
			d.State = StateApproved
		}
	}
	return d
}

// voteProblem says why v does not count under rule r, or "".
func (r Rule) voteProblem(p Proposal, v Vote, now time.Time) string {
	noun := "approval"
	switch v.Decision {
	case Approve:
	case Reject:
		noun = "rejection"
	default:
		return fmt.Sprintf("unknown decision %q: want approve or reject", v.Decision)
	}
	switch {
	case v.User == "":
		return "vote has no user"
	case v.User == p.Requester:
		if v.Decision == Reject {
			return reasonSelfReject
		}
		return reasonSelfApprove
	case v.PlanHash != p.PlanHash:
		return noun + " was for a different plan (plan changed)"
	case now.Sub(v.At) > r.Expiry:
		return fmt.Sprintf("%s expired (older than %s)", noun, FormatDuration(r.Expiry))
	case !slices.ContainsFunc(r.Groups, func(g config.Requirement) bool { return eligible(g.From, v) }):
		return fmt.Sprintf("%s: needs %s", ReasonNotEligible, strings.Join(r.principals(), " or "))
	}
	return ""
}

// principals lists the From entries of all groups, without repeats.
func (r Rule) principals() []string {
	var out []string
	for _, g := range r.Groups {
		for _, f := range g.From {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		return []string{"(nobody: the rule takes no votes)"}
	}
	return out
}

// eligible reports whether the voter is one of from: user:NAME names them,
// role:NAME is any holder of the role.
func eligible(from []string, v Vote) bool {
	for _, f := range from {
		kind, name, _ := strings.Cut(f, ":")
		switch kind {
		case "user":
			if name == v.User {
				return true
			}
		case "role":
			if slices.Contains(v.Roles, name) {
				return true
			}
		}
	}
	return false
}

// assign matches approvers to group slots (group g has Approvals slots),
// each approver to at most one slot of a group they are eligible for, and
// returns the group of each approver, -1 for those not needed. It is a
// maximum bipartite matching (Kuhn's augmenting paths), so it fills as many
// slots as any assignment could: if all groups can be satisfied at once,
// they are. Slots are tried in group order and approvers in the given
// order, so the result is deterministic.
func assign(groups []config.Requirement, approvers []Vote) []int {
	var slotGroup []int
	for g, req := range groups {
		// More slots than approvers can never fill.
		for range min(req.Approvals, len(approvers)) {
			slotGroup = append(slotGroup, g)
		}
	}
	canTake := make([][]bool, len(approvers)) // approver -> group
	for a, v := range approvers {
		canTake[a] = make([]bool, len(groups))
		for g, req := range groups {
			canTake[a][g] = eligible(req.From, v)
		}
	}
	holder := make([]int, len(slotGroup)) // slot -> approver, -1 when free
	for s := range holder {
		holder[s] = -1
	}
	var augment func(a int, seen []bool) bool
	augment = func(a int, seen []bool) bool {
		for s, g := range slotGroup {
			if seen[s] || !canTake[a][g] {
				continue
			}
			seen[s] = true
			if holder[s] == -1 || augment(holder[s], seen) {
				holder[s] = a
				return true
			}
		}
		return false
	}
	for a := range approvers {
		augment(a, make([]bool, len(slotGroup)))
	}
	out := make([]int, len(approvers))
	for a := range out {
		out[a] = -1
	}
	for s, a := range holder {
		if a >= 0 {
			out[a] = slotGroup[s]
		}
	}
	return out
}

// missing describes the approvals still needed, "" when every group is
// satisfied.
func missing(groups []GroupStatus) string {
	var parts []string
	for _, g := range groups {
		n := g.Need - len(g.Counted)
		if n <= 0 {
			continue
		}
		what := "more"
		if len(parts) == 0 {
			what = "more " + plural(n, "approval", "approvals")
		}
		parts = append(parts, fmt.Sprintf("%d %s from %s", n, what, strings.Join(g.From, " or ")))
	}
	return strings.Join(parts, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// FormatDuration prints d the way configs write it: 7d, 24h, 4h, 1h30m.
func FormatDuration(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
