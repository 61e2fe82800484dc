package report

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// bytesText renders a size in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// seconds renders a duration in seconds readably: 1.25s, 4m10s, 2h5m.
func seconds(s float64) string {
	if s < 60 {
		return fmt.Sprintf("%.2fs", s)
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// optSeconds renders an optional duration in seconds; "n/a" when unset.
func optSeconds(s *float64) string {
	if s == nil {
		return "n/a"
	}
	return seconds(*s)
}

// percent renders part/whole with two decimals, never rounding up to 100%.
func percent(part, whole int64) string {
	if whole == 0 {
		return "n/a"
	}
	p := float64(part) * 100 / float64(whole)
	if part < whole && p > 99.99 {
		p = 99.99
	}
	return fmt.Sprintf("%.2f%%", p)
}

// short abbreviates a hash.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// ruleApplies reports whether an approval rule may match actions of the
// service: its service criterion is empty or names it.
func ruleApplies(r config.ApprovalRule, service string) bool {
	return len(r.Match.Service) == 0 || slices.Contains(r.Match.Service, service)
}

// ruleText describes an approval rule in one line.
func ruleText(r config.ApprovalRule) string {
	var parts []string
	kinds := "every action"
	if len(r.Match.Action) > 0 {
		kinds = strings.Join(r.Match.Action, ", ")
	}
	parts = append(parts, "matches "+kinds)
	if len(r.Match.Risk) > 0 {
		parts = append(parts, "risk "+strings.Join(r.Match.Risk, ", "))
	}
	if r.Match.Facts != "" {
		parts = append(parts, "when "+r.Match.Facts)
	}
	if r.AutoApprove {
		parts = append(parts, "auto-approved")
	} else {
		var reqs []string
		for _, q := range r.Require {
			reqs = append(reqs, fmt.Sprintf("%d from %s", max(1, q.Approvals), strings.Join(q.From, " or ")))
		}
		if len(reqs) > 0 {
			parts = append(parts, "requires "+strings.Join(reqs, " and "))
		}
	}
	return strings.Join(parts, "; ")
}
