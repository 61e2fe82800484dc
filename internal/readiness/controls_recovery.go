package readiness

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// Recovery controls: backups, restore drills, who runs them, the emergency
// kit.

// checkBackups: the newest successful backup of every configured backup is
// younger than the RPO objective (or backup_max_age).
func checkBackups(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(svc.Backups) == 0 {
		return Result{Status: Unknown, Reason: "no backups configured",
			Fix: fmt.Sprintf("add a backup under services[%s].backups (see docs/backups.md)", svc.Name)}, nil
	}
	maxAge, what := en.th.BackupMaxAge, "backup_max_age"
	if maxAge == 0 {
		rpo, err := config.ParseDuration(svc.Objectives.RPO)
		if svc.Objectives.RPO == "" || err != nil {
			return Result{Status: Unknown, Reason: "no RPO objective to compare backups with",
				Fix: fmt.Sprintf("set objectives.rpo of service %s (like 24h)", svc.Name)}, nil
		}
		maxAge, what = rpo, "RPO"
	}
	res := Result{Status: Pass}
	var stale, failedLast, never, external []string
	oldest := time.Duration(0)
	for _, b := range svc.Backups {
		runs, err := en.e.Store.ListBackupRuns(ctx, store.BackupRunFilter{Service: svc.Name, Backup: b.Name, Limit: 50})
		if err != nil {
			return Result{}, err
		}
		i := slices.IndexFunc(runs, func(r store.BackupRun) bool { return r.State == store.BackupSucceeded })
		if i < 0 && len(runs) == 0 && (b.Method == "pgbackrest" || b.Method == "command") {
			// Taken by another tool: Steward reads these backups from the
			// tool (steward backup list) but records no runs of them.
			external = append(external, b.Name+" ("+b.Method+")")
			continue
		}
		if i < 0 {
			never = append(never, b.Name)
			continue
		}
		last := runs[i]
		age := en.now.Sub(last.StartedAt)
		oldest = max(oldest, age)
		ev := Evidence{Kind: "backup", ID: strconv.FormatInt(last.ID, 10), At: last.StartedAt, Actor: last.Actor,
			Summary: fmt.Sprintf("backup %s/%s %s: %s, %s old (%s %s)", svc.Name, b.Name, last.BackupID, humanBytes(last.SizeBytes), ago(en.now, last.StartedAt), what, fmtDuration(maxAge)),
			Link:    serviceLink(svc.Name) + "#backups"}
		if err := en.auditFor(ctx, &ev, "backup.run", "backup:"+svc.Name+"/"+b.Name, "run", last.ID); err != nil {
			return Result{}, err
		}
		res.Evidence = append(res.Evidence, ev)
		if age > maxAge {
			stale = append(stale, fmt.Sprintf("%s (%s old)", b.Name, fmtDuration(age)))
		} else if i > 0 && runs[0].State == store.BackupFailed {
			failedLast = append(failedLast, b.Name)
		}
	}
	n := len(svc.Backups) - len(external)
	if n == 0 {
		return Result{Status: Unknown, Reason: fmt.Sprintf("backups taken by another tool, whose runs Steward does not record: %s", strings.Join(external, ", ")),
			Fix: fmt.Sprintf("check them with steward backup list %s; a drill of each shows that they restore", svc.Name)}, nil
	}
	switch {
	case len(never) > 0 || len(stale) > 0:
		res.Status = Fail
		var parts []string
		if len(never) > 0 {
			parts = append(parts, fmt.Sprintf("never succeeded: %s", strings.Join(never, ", ")))
		}
		if len(stale) > 0 {
			parts = append(parts, fmt.Sprintf("older than the %s %s: %s", what, fmtDuration(maxAge), strings.Join(stale, ", ")))
		}
		res.Reason = fmt.Sprintf("%d of %s out of date; %s", len(never)+len(stale), plural(n, "backup", "backups"), strings.Join(parts, "; "))
		res.Fix = fmt.Sprintf("run steward backup run %s and give the backup a schedule shorter than the %s", svc.Name, what)
	case len(failedLast) > 0:
		res.Status = Warn
		res.Reason = fmt.Sprintf("%s within the %s %s, but the latest run of %s failed", plural(n, "backup", "backups"), what, fmtDuration(maxAge), strings.Join(failedLast, ", "))
		res.Fix = fmt.Sprintf("see steward backup list %s for the error and run the backup again", svc.Name)
	default:
		res.Reason = fmt.Sprintf("newest successful run of %s at most %s old, within the %s %s", plural(n, "backup", "backups"), fmtDuration(oldest), what, fmtDuration(maxAge))
	}
	if len(external) > 0 {
		res.Reason += "; not recorded (taken by another tool): " + strings.Join(external, ", ")
	}
	return res, nil
}

// drillRuns returns the service's drill runs (restores excluded), newest
// first, once per evaluation.
func drillRuns(ctx context.Context, en *env) ([]store.DrillRunRow, error) {
	v, err := en.memo("drills:"+en.svc.Name, func() (any, error) {
		rows, err := en.e.Store.ListDrillRuns(ctx, store.DrillRunFilter{Service: en.svc.Name, Limit: 1000})
		if err != nil {
			return nil, err
		}
		var names []string
		for _, d := range en.svc.Drills {
			names = append(names, d.Name)
		}
		// A real restore is recorded in drill_runs too, under a name
		// that is not a configured drill; only drills rehearse.
		return slices.DeleteFunc(rows, func(r store.DrillRunRow) bool { return !slices.Contains(names, r.Drill) }), nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]store.DrillRunRow), nil
}

func drillEvidence(ctx context.Context, en *env, r store.DrillRunRow) (Evidence, error) {
	sum := fmt.Sprintf("drill %s/%s #%d %s", r.Service, r.Drill, r.ID, r.State)
	if r.RTOSeconds != nil {
		sum += fmt.Sprintf(", RTO %s", fmtDuration(time.Duration(*r.RTOSeconds*float64(time.Second))))
	}
	if r.RPOSeconds != nil {
		sum += fmt.Sprintf(", RPO %s", fmtDuration(time.Duration(*r.RPOSeconds*float64(time.Second))))
	}
	sum += fmt.Sprintf(", %s ago", ago(en.now, r.StartedAt))
	ev := Evidence{Kind: "drill", ID: strconv.FormatInt(r.ID, 10), At: r.StartedAt, Actor: r.Actor, Summary: sum,
		Link: fmt.Sprintf("/drills/%d", r.ID)}
	err := en.auditFor(ctx, &ev, "drill.run", r.Service+"/"+r.Drill, "run_id", r.ID)
	return ev, err
}

// trendRuns is how many recent passed drills the RTO trend is fitted on.
const trendRuns = 10

// checkRestoreDrill: a drill passed within drill_max_age, its RTO and RPO
// within the objectives, and the RTO trend (least squares over the last
// passed drills, RTO against time) projected rto_trend_horizon ahead stays
// within the RTO objective.
func checkRestoreDrill(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(svc.Drills) == 0 {
		if len(svc.Backups) == 0 {
			return Result{Status: Unknown, Reason: "no backups and no restore drills configured",
				Fix: "configure a backup and a drill of it (see docs/drills.md)"}, nil
		}
		return Result{Status: Fail, Reason: fmt.Sprintf("%s configured but no restore drill", plural(len(svc.Backups), "backup", "backups")),
			Fix: fmt.Sprintf("add a drill under services[%s].drills and run steward drill run %s", svc.Name, svc.Name)}, nil
	}
	runs, err := drillRuns(ctx, en)
	if err != nil {
		return Result{}, err
	}
	var passed []store.DrillRunRow
	for _, r := range runs {
		if r.State == store.DrillPassed {
			passed = append(passed, r)
		}
	}
	maxAge := en.th.DrillMaxAge
	fix := fmt.Sprintf("run steward drill run %s (and schedule the drill more often than every %s)", svc.Name, fmtDuration(maxAge))
	if len(passed) == 0 {
		res := Result{Status: Fail, Reason: fmt.Sprintf("no passed drill (%s recorded)", plural(len(runs), "run", "runs")), Fix: fix}
		if len(runs) > 0 {
			ev, err := drillEvidence(ctx, en, runs[0])
			if err != nil {
				return Result{}, err
			}
			res.Evidence = append(res.Evidence, ev)
			res.Reason += fmt.Sprintf("; the latest %s %s ago: %s", runs[0].State, ago(en.now, runs[0].StartedAt), firstLine(runs[0].Error))
		}
		return res, nil
	}
	last := passed[0]
	ev, err := drillEvidence(ctx, en, last)
	if err != nil {
		return Result{}, err
	}
	res := Result{Status: Pass, Evidence: []Evidence{ev}}
	age := en.now.Sub(last.StartedAt)
	var problems []string
	if age > maxAge {
		problems = append(problems, fmt.Sprintf("last passed drill %s ago, older than %s", fmtDuration(age), fmtDuration(maxAge)))
	}
	rto, rtoErr := config.ParseDuration(svc.Objectives.RTO)
	hasRTO := svc.Objectives.RTO != "" && rtoErr == nil
	rpo, rpoErr := config.ParseDuration(svc.Objectives.RPO)
	hasRPO := svc.Objectives.RPO != "" && rpoErr == nil
	if hasRTO && last.RTOSeconds != nil && *last.RTOSeconds > rto.Seconds() {
		problems = append(problems, fmt.Sprintf("measured RTO %s exceeds the objective %s", fmtSeconds(*last.RTOSeconds), fmtDuration(rto)))
	}
	if hasRPO && last.RPOSeconds != nil && *last.RPOSeconds > rpo.Seconds() {
		problems = append(problems, fmt.Sprintf("measured RPO %s exceeds the objective %s", fmtSeconds(*last.RPOSeconds), fmtDuration(rpo)))
	}
	trend := ""
	if hasRTO {
		var pts []point
		for _, r := range passed[:min(len(passed), trendRuns)] {
			if r.RTOSeconds != nil {
				pts = append(pts, point{x: r.StartedAt.Sub(en.now).Hours() / 24, y: *r.RTOSeconds})
			}
		}
		horizon := en.th.RTOTrendHorizon
		if a, b, ok := leastSquares(pts); ok && len(pts) >= 3 {
			projected := a + b*horizon.Hours()/24
			trend = fmt.Sprintf("RTO trend over %d drills %+.0fs/day, projected %s in %s", len(pts), b, fmtSeconds(max(projected, 0)), fmtDuration(horizon))
			if projected > rto.Seconds() {
				problems = append(problems, fmt.Sprintf("%s, over the objective %s", trend, fmtDuration(rto)))
			}
		} else {
			trend = fmt.Sprintf("RTO trend needs 3 passed drills with RTO, have %d", len(pts))
		}
	}
	if len(problems) > 0 {
		res.Status = Fail
		res.Reason = strings.Join(problems, "; ")
		res.Fix = fix
		if !strings.Contains(res.Reason, "older than") {
			res.Fix = "make the restore faster (parallel restore jobs, a smaller or split database) or agree a realistic objective; see steward drill trend " + svc.Name
		}
		return res, nil
	}
	res.Reason = fmt.Sprintf("drill passed %s ago (max %s)", fmtDuration(age), fmtDuration(maxAge))
	if last.RTOSeconds != nil {
		res.Reason += ", RTO " + fmtSeconds(*last.RTOSeconds)
		if hasRTO {
			res.Reason += " of " + fmtDuration(rto)
		}
	}
	if last.RPOSeconds != nil {
		res.Reason += ", RPO " + fmtSeconds(*last.RPOSeconds)
		if hasRPO {
			res.Reason += " of " + fmtDuration(rpo)
		}
	}
	if !hasRTO || !hasRPO {
		res.Status = Warn
		res.Reason += "; no RTO/RPO objective to measure against"
		res.Fix = fmt.Sprintf("set objectives.rto and objectives.rpo of service %s", svc.Name)
	} else if trend != "" {
		res.Reason += "; " + trend
	}
	return res, nil
}

// checkDrillRotation: more than one person ran a drill within the window.
func checkDrillRotation(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(svc.Drills) == 0 {
		return Result{Status: Unknown, Reason: "no restore drills configured",
			Fix: "configure a restore drill first (see docs/drills.md)"}, nil
	}
	runs, err := drillRuns(ctx, en)
	if err != nil {
		return Result{}, err
	}
	window, want := en.th.DrillRotationWindow, en.th.DrillRotationPeople
	since := en.now.Add(-window)
	people := map[string]store.DrillRunRow{}
	var order []string
	for _, r := range runs {
		if r.StartedAt.Before(since) || r.State == store.DrillRunning || isSystemActor(r.Actor) {
			continue
		}
		if _, seen := people[r.Actor]; !seen {
			people[r.Actor] = r
			order = append(order, r.Actor)
		}
	}
	res := Result{}
	for _, p := range order {
		ev, err := drillEvidence(ctx, en, people[p])
		if err != nil {
			return Result{}, err
		}
		res.Evidence = append(res.Evidence, ev)
	}
	slices.Sort(order)
	who := strings.Join(order, ", ")
	switch {
	case len(order) >= want:
		res.Status = Pass
		res.Reason = fmt.Sprintf("%d people ran drills in %s (%s)", len(order), fmtDuration(window), who)
	case len(order) == 0:
		res.Status = Fail
		res.Reason = fmt.Sprintf("nobody ran a drill by hand in %s (scheduled runs do not count), want %d people", fmtDuration(window), want)
		res.Fix = fmt.Sprintf("have %d people each run steward drill run %s", want, svc.Name)
	default:
		res.Status = Fail
		res.Reason = fmt.Sprintf("only %s ran drills in %s (%s), want %d", plural(len(order), "person", "people"), fmtDuration(window), who, want)
		res.Fix = fmt.Sprintf("have someone other than %s run steward drill run %s", who, svc.Name)
	}
	return res, nil
}

// isSystemActor reports whether actor is Steward itself (a scheduled job),
// not a person.
func isSystemActor(actor string) bool {
	return actor == "" || strings.HasPrefix(actor, "system:")
}

// checkEmergencyKit: a kit was created and opened in a drill (kit.drill,
// outcome ok) within kit_drill_max_age.
func checkEmergencyKit(ctx context.Context, en *env) (Result, error) {
	created, err := en.auditEvents(ctx, "kit.create", "")
	if err != nil {
		return Result{}, err
	}
	if len(created) == 0 {
		if len(en.cfg.Kit.Credentials) == 0 {
			return Result{Status: Fail, Reason: "no emergency kit: kit.credentials is empty and no kit was ever created",
				Fix: "list the emergency credentials under kit.credentials and run steward kit create (see docs/access.md)"}, nil
		}
		return Result{Status: Fail, Reason: fmt.Sprintf("%s configured but no kit was ever created", plural(len(en.cfg.Kit.Credentials), "kit credential", "kit credentials")),
			Fix: "run steward kit create and hand out the shares"}, nil
	}
	kitEv := Evidence{Kind: "audit", ID: strings.TrimPrefix(created[0].Target, "kit:"), At: created[0].Time, Actor: created[0].Actor,
		Summary: fmt.Sprintf("emergency kit %s created %s ago", strings.TrimPrefix(created[0].Target, "kit:"), ago(en.now, created[0].Time))}
	setAudit(&kitEv, created[0])
	res := Result{Evidence: []Evidence{kitEv}}
	// Only drills of the current kit count; a drill with fewer shares than
	// the threshold rehearses a refusal, not the kit.
	current := created[0].Target
	var made struct {
		Threshold int `json:"threshold"`
	}
	_ = json.Unmarshal([]byte(created[0].Details), &made)
	drills, err := en.auditEvents(ctx, "kit.drill", current)
	if err != nil {
		return Result{}, err
	}
	maxAge := en.th.KitDrillMaxAge
	var ok, failed *store.AuditRecord
	for i := range drills {
		d := &drills[i]
		if d.Outcome == "ok" && ok == nil {
			ok = d
		}
		var det struct {
			ShareFiles int `json:"share_files"`
		}
		_ = json.Unmarshal([]byte(d.Details), &det)
		if d.Outcome != "ok" && failed == nil && det.ShareFiles >= made.Threshold {
			failed = d
		}
	}
	fix := "rehearse: gather the share holders and run steward kit open --drill DIR SHARES…"
	if ok == nil {
		res.Status = Fail
		res.Reason = fmt.Sprintf("the current kit %s was never opened in a drill (%s recorded)", strings.TrimPrefix(current, "kit:"), plural(len(drills), "attempt", "attempts"))
		res.Fix = fix
		return res, nil
	}
	ev := Evidence{Kind: "kit-drill", At: ok.Time, Actor: ok.Actor, Summary: fmt.Sprintf("kit drill %s ago by %s", ago(en.now, ok.Time), ok.Actor)}
	setAudit(&ev, *ok)
	res.Evidence = append(res.Evidence, ev)
	age := en.now.Sub(ok.Time)
	if age > maxAge {
		res.Status = Fail
		res.Reason = fmt.Sprintf("last kit drill %s ago, older than %s", fmtDuration(age), fmtDuration(maxAge))
		res.Fix = fix
		return res, nil
	}
	res.Status = Pass
	res.Reason = fmt.Sprintf("kit drilled %s ago (max %s)", fmtDuration(age), fmtDuration(maxAge))
	if failed != nil && failed.Time.After(ok.Time) {
		res.Status = Warn
		res.Reason += fmt.Sprintf(", but a later drill %s ago failed", ago(en.now, failed.Time))
		res.Fix = "check the shares that did not agree (steward kit open --drill says which) and re-issue them"
	}
	return res, nil
}

type point struct{ x, y float64 }

// leastSquares fits y = a + b·x; ok is false when x does not vary.
func leastSquares(pts []point) (a, b float64, ok bool) {
	n := float64(len(pts))
	if n < 2 {
		return 0, 0, false
	}
	var sx, sy, sxx, sxy float64
	for _, p := range pts {
		sx += p.x
		sy += p.y
		sxx += p.x * p.x
		sxy += p.x * p.y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, 0, false
	}
	b = (n*sxy - sx*sy) / den
	a = (sy - b*sx) / n
	return a, b, true
}

func fmtSeconds(s float64) string {
	return fmtDuration(time.Duration(s * float64(time.Second)))
}

func humanBytes(n int64) string {
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

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
