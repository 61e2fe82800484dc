package readiness

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// Access controls: standing privilege, grants, break-glass reviews.

// checkStandingPrivilege: the latest standing-privilege scan of every
// database ran within scan_max_age and found nothing outside the
// allow-list.
func checkStandingPrivilege(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(svc.Databases) == 0 {
		return Result{Status: Unknown, Reason: "no databases configured",
			Fix: fmt.Sprintf("list the service's databases under services[%s].databases", svc.Name)}, nil
	}
	res := Result{}
	var never, stale, findings, errored []string
	scanned, skipped, principals := 0, 0, 0
	for _, d := range svc.Databases {
		scans, err := en.e.Store.ListAccessScans(ctx, store.AccessScanFilter{Service: svc.Name, Database: d.Name, Limit: 20})
		if err != nil {
			return Result{}, err
		}
		i := slices.IndexFunc(scans, func(s store.AccessScanRow) bool { return s.Status != "error" })
		if i < 0 {
			never = append(never, d.Name)
			if len(scans) > 0 {
				errored = append(errored, fmt.Sprintf("%s: %s", d.Name, firstLine(scans[0].Error)))
			}
			continue
		}
		s := scans[i]
		if s.Status == "skipped" {
			skipped++
			continue
		}
		scanned++
		ev := Evidence{Kind: "scan", ID: strconv.FormatInt(s.ID, 10), At: s.StartedAt, Actor: s.Actor,
			Summary: fmt.Sprintf("scan %s/%s %s, %d findings, %s ago", svc.Name, d.Name, s.Status, s.Findings, ago(en.now, s.StartedAt)),
			Link:    serviceLink(svc.Name) + "#access"}
		if err := en.auditFor(ctx, &ev, "access.scan", svc.Name+"/"+d.Name, "scan_id", s.ID); err != nil {
			return Result{}, err
		}
		res.Evidence = append(res.Evidence, ev)
		if age := en.now.Sub(s.StartedAt); age > en.th.ScanMaxAge {
			stale = append(stale, fmt.Sprintf("%s (%s ago)", d.Name, fmtDuration(age)))
		}
		if s.Findings > 0 {
			findings = append(findings, fmt.Sprintf("%s: %d", d.Name, s.Findings))
			principals += s.Findings
		}
		if i > 0 {
			errored = append(errored, fmt.Sprintf("%s: latest scan failed: %s", d.Name, firstLine(scans[0].Error)))
		}
	}
	if scanned == 0 && skipped > 0 && len(never) == 0 {
		return Result{Status: Unknown, Reason: fmt.Sprintf("nothing to scan: %s without logins (SQLite)", plural(skipped, "database", "databases")), Evidence: res.Evidence}, nil
	}
	var problems []string
	if len(never) > 0 {
		problems = append(problems, "never scanned: "+strings.Join(never, ", "))
	}
	if len(stale) > 0 {
		problems = append(problems, fmt.Sprintf("latest scan older than %s: %s", fmtDuration(en.th.ScanMaxAge), strings.Join(stale, ", ")))
	}
	if len(findings) > 0 {
		problems = append(problems, fmt.Sprintf("%s outside the allow-list (%s)", plural(principals, "principal", "principals"), strings.Join(findings, ", ")))
	}
	switch {
	case len(problems) > 0:
		res.Status = Fail
		res.Reason = strings.Join(problems, "; ")
		if len(errored) > 0 {
			res.Reason += "; " + strings.Join(errored, "; ")
		}
		res.Fix = fmt.Sprintf("run steward access scan %s on a schedule (daily); revoke each finding or add it to the database's standing_access with a reason", svc.Name)
	case len(errored) > 0:
		res.Status = Warn
		res.Reason = fmt.Sprintf("%s scanned clean within %s, but %s", plural(scanned, "database", "databases"), fmtDuration(en.th.ScanMaxAge), strings.Join(errored, "; "))
		res.Fix = "fix what stops the scan (see steward access scan " + svc.Name + ")"
	default:
		res.Status = Pass
		res.Reason = fmt.Sprintf("%s scanned within %s, 0 findings outside the allow-list", plural(scanned, "database", "databases"), fmtDuration(en.th.ScanMaxAge))
	}
	return res, nil
}

// revokeSlack is how long past its expiry a grant may still be live before
// it counts as outstanding (the sweeper revokes within seconds).
const revokeSlack = 5 * time.Minute

// maxGrantEvidence bounds the grants listed as evidence.
const maxGrantEvidence = 50

// checkGrants: no grant is live past its expiry, and every revoked grant
// has its proof (the recorded revocation and its access.revoke event).
func checkGrants(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	grants, err := en.e.Store.ListGrants(ctx, store.GrantFilter{Service: svc.Name, Limit: 10000})
	if err != nil {
		return Result{}, err
	}
	if len(svc.Access) == 0 && len(grants) == 0 {
		return Result{Status: Unknown, Reason: "no access profiles configured and no grants recorded",
			Fix: fmt.Sprintf("define just-in-time access profiles under services[%s].access (see docs/access.md)", svc.Name)}, nil
	}
	res := Result{}
	var outstanding, noProof []string
	active, revoked := 0, 0
	var latencies []time.Duration
	for _, g := range grants {
		live := g.State == "active" || g.State == "revoking" || g.State == "issuing"
		var ev *Evidence
		if len(res.Evidence) < maxGrantEvidence {
			ev = &Evidence{Kind: "grant", ID: strconv.FormatInt(g.ID, 10), At: g.CreatedAt, Actor: g.Requester,
				Summary: fmt.Sprintf("grant #%d %s/%s to %s %s, expires %s", g.ID, g.Database, g.Profile, g.Requester, g.State, g.ExpiresAt.Format(time.RFC3339)),
				Link:    serviceLink(svc.Name) + "#grants"}
		}
		switch {
		case live && en.now.After(g.ExpiresAt.Add(revokeSlack)):
			outstanding = append(outstanding, fmt.Sprintf("#%d (%s, %s past expiry)", g.ID, g.State, fmtDuration(en.now.Sub(g.ExpiresAt))))
		case live:
			active++
		case g.State == "revoked":
			revoked++
			proof := g.RevokedAt != nil && g.Revocation != "" && g.Revocation != "{}"
			if ev != nil || !proof {
				tmp := Evidence{}
				if ev == nil {
					ev = &tmp
				}
				if err := en.auditFor(ctx, ev, "access.revoke", fmt.Sprintf("grant:%d", g.ID), "", 0); err != nil {
					return Result{}, err
				}
				proof = proof && ev.AuditSeq > 0
			}
			if !proof {
				noProof = append(noProof, fmt.Sprintf("#%d", g.ID))
			} else if ev != nil && g.RevokedAt != nil {
				latency := g.RevokedAt.Sub(g.ExpiresAt)
				if g.RevokedAt.Before(g.ExpiresAt) {
					latency = 0 // revoked early, on request
				} else {
					latencies = append(latencies, latency)
				}
				ev.Summary += fmt.Sprintf(", revoked with proof %s after expiry", fmtDuration(latency))
			}
		}
		if ev != nil && ev.ID != "" {
			res.Evidence = append(res.Evidence, *ev)
		}
	}
	slices.Sort(latencies)
	lat := ""
	if len(latencies) > 0 {
		lat = fmt.Sprintf(", median revocation %s after expiry", fmtDuration(latencies[len(latencies)/2]))
	}
	summary := fmt.Sprintf("%s: %d revoked, %d live within expiry", plural(len(grants), "grant", "grants"), revoked, active)
	switch {
	case len(outstanding) > 0 || len(noProof) > 0:
		res.Status = Fail
		var parts []string
		if len(outstanding) > 0 {
			parts = append(parts, "outstanding past expiry: "+strings.Join(outstanding, ", "))
		}
		if len(noProof) > 0 {
			parts = append(parts, "revoked without proof: "+strings.Join(noProof, ", "))
		}
		res.Reason = summary + "; " + strings.Join(parts, "; ")
		res.Fix = "make sure the server (its access sweeper) runs, or run steward access sweep; steward access revoke ID --reason … proves each revocation"
	default:
		res.Status = Pass
		res.Reason = summary + ", none outstanding past expiry, every revocation proven" + lat
	}
	return res, nil
}

// checkBreakGlass: every break-glass use of the service in change_period
// was reviewed within its deadline.
func checkBreakGlass(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	reviews, err := reviewsWithActions(ctx, en)
	if err != nil {
		return Result{}, err
	}
	period := en.th.ChangePeriod
	since := en.now.Add(-period)
	res := Result{}
	var late, overdue, open []string
	n := 0
	for _, ra := range reviews {
		r, a := ra.review, ra.action
		if r.CreatedAt.Before(since) || a.Service != svc.Name {
			continue
		}
		n++
		ev := Evidence{Kind: "review", ID: strconv.FormatInt(r.ID, 10), At: r.CreatedAt, Actor: r.Breaker, Link: fmt.Sprintf("/actions/%d", a.ID)}
		var who []string
		for _, s := range r.Signoffs {
			who = append(who, s.User)
		}
		switch {
		case r.CompletedAt != nil && r.CompletedAt.After(r.Deadline):
			late = append(late, fmt.Sprintf("review %d (%s late)", r.ID, fmtDuration(r.CompletedAt.Sub(r.Deadline))))
			ev.Summary = fmt.Sprintf("break-glass %s #%d by %s: reviewed late by %s", a.Kind, a.ID, r.Breaker, strings.Join(who, ", "))
		case r.CompletedAt != nil:
			ev.Summary = fmt.Sprintf("break-glass %s #%d by %s: reviewed by %s within %s", a.Kind, a.ID, r.Breaker, strings.Join(who, ", "), fmtDuration(r.CompletedAt.Sub(r.CreatedAt)))
		case en.now.After(r.Deadline):
			overdue = append(overdue, fmt.Sprintf("review %d (%s overdue, %d of %d signoffs)", r.ID, fmtDuration(en.now.Sub(r.Deadline)), len(r.Signoffs), r.Required))
			ev.Summary = fmt.Sprintf("break-glass %s #%d by %s: review overdue", a.Kind, a.ID, r.Breaker)
		default:
			open = append(open, fmt.Sprintf("review %d due in %s", r.ID, fmtDuration(r.Deadline.Sub(en.now))))
			ev.Summary = fmt.Sprintf("break-glass %s #%d by %s: review open, %d of %d signoffs", a.Kind, a.ID, r.Breaker, len(r.Signoffs), r.Required)
		}
		target := fmt.Sprintf("review:%d", r.ID)
		action := "review.complete"
		if r.CompletedAt == nil {
			action = "review.open"
		}
		if err := en.auditFor(ctx, &ev, action, target, "", 0); err != nil {
			return Result{}, err
		}
		res.Evidence = append(res.Evidence, ev)
	}
	head := fmt.Sprintf("%s in %s", plural(n, "break-glass use", "break-glass uses"), fmtDuration(period))
	switch {
	case len(late) > 0 || len(overdue) > 0:
		res.Status = Fail
		res.Reason = head + "; not reviewed in time: " + strings.Join(append(overdue, late...), ", ")
		res.Fix = "have two people other than the breaker run steward review complete ID --notes … (see steward review list)"
	case len(open) > 0:
		res.Status = Pass
		res.Reason = fmt.Sprintf("%s, every closed review on time; open: %s", head, strings.Join(open, ", "))
	case n == 0:
		res.Status = Pass
		res.Reason = fmt.Sprintf("no break-glass use in %s", fmtDuration(period))
	default:
		res.Status = Pass
		res.Reason = head + ", every one reviewed within its deadline"
	}
	return res, nil
}

// reviewAction is a break-glass review with the action it reviews.
type reviewAction struct {
	review store.ReviewRow
	action store.ActionRow
}

// reviewsWithActions reads every review and its action once per evaluation.
func reviewsWithActions(ctx context.Context, en *env) ([]reviewAction, error) {
	v, err := en.memo("reviews", func() (any, error) {
		reviews, err := en.e.Store.ListReviews(ctx, "")
		if err != nil {
			return nil, err
		}
		out := make([]reviewAction, 0, len(reviews))
		for _, r := range reviews {
			a, err := en.e.Store.GetAction(ctx, r.ActionID)
			if err != nil {
				return nil, err
			}
			out = append(out, reviewAction{review: r, action: a})
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]reviewAction), nil
}
