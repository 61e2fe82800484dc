package report

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// Kinds of evidence items the report adds to readiness's list.
const (
	kindApproval   = "approval"
	kindBreakGlass = "break-glass"
	kindDeploy     = "deploy"
	kindKit        = "kit"
	kindRevocation = "revocation"
)

// steward is the section key of Steward-wide evidence.
const steward = ""

// stewardWide are the controls of the Steward-wide section.
var stewardWide = map[string]bool{readiness.CtlEmergencyKit: true, readiness.CtlAlertChannels: true, readiness.CtlAuditLog: true}

// collector gathers evidence into sections.
type collector struct {
	d        Deps
	p        store.Period
	service  string
	ix       *auditIndex
	sections map[string]*Section
	actions  map[int64]store.ActionRow // by id, for reviews
}

// serviceConfig returns the configured service, nil when not configured.
func (c *collector) serviceConfig(name string) *config.Service {
	for i := range c.d.Config.Services {
		if c.d.Config.Services[i].Name == name {
			return &c.d.Config.Services[i]
		}
	}
	return nil
}

// section returns the section of service, creating it with every control
// of the catalog.
func (c *collector) section(service string) *Section {
	if s, ok := c.sections[service]; ok {
		return s
	}
	s := &Section{Service: service, Title: "Service " + service}
	if service == steward {
		s.Title = "Steward-wide evidence"
		s.Description = "Evidence not tied to one service: the emergency kit, the audit log's checkpoints and notification tests."
	} else if sc := c.serviceConfig(service); sc != nil {
		s.Tier, s.Owners, s.Description = sc.Tier, sc.Owners, sc.Description
	} else {
		s.Description = "Not in the current configuration; its evidence is in the store."
	}
	for _, ctl := range readiness.Catalog() {
		if service == steward && !stewardWide[ctl.ID] {
			continue
		}
		s.Controls = append(s.Controls, ControlEvidence{Control: ctl, Evidence: []readiness.Evidence{}})
	}
	c.sections[service] = s
	return s
}

// control returns the evidence list of a control of a service's section.
func (c *collector) control(service, id string) *ControlEvidence {
	s := c.section(service)
	for i := range s.Controls {
		if s.Controls[i].Control.ID == id {
			return &s.Controls[i]
		}
	}
	panic("report: control " + id + " is not in the readiness catalog")
}

// inPeriod reports whether t lies in the report's period.
func (c *collector) inPeriod(t time.Time) bool {
	return !t.Before(c.p.From) && !t.After(c.p.To)
}

// wanted reports whether evidence of service belongs in the report: the
// filtered service's, and always the Steward-wide evidence.
func (c *collector) wanted(service string) bool {
	return c.service == "" || service == c.service || service == steward
}

// add appends e to a control when it lies in the period, stamping it with
// the audit event ev (when found).
func (c *collector) add(service, control string, e readiness.Evidence, ev event, found bool) {
	if !c.inPeriod(e.At) || !c.wanted(service) {
		return
	}
	e.At = e.At.UTC()
	if found {
		e.AuditSeq, e.AuditHash = ev.Seq, ev.Hash
		if e.Link == "" {
			e.Link = "/audit?seq=" + strconv.FormatInt(ev.Seq, 10)
		}
	}
	ce := c.control(service, control)
	ce.Evidence = append(ce.Evidence, e)
}

func (c *collector) note(service, control, format string, args ...any) {
	ce := c.control(service, control)
	ce.Notes = append(ce.Notes, fmt.Sprintf(format, args...))
}

// collect reads every kind of evidence.
func (c *collector) collect(ctx context.Context) error {
	ix, err := loadAuditIndex(ctx, c.d.Store, c.p.From.Add(-time.Hour))
	if err != nil {
		return err
	}
	c.ix = ix
	c.section(steward)
	for _, s := range c.d.Config.Services {
		if c.wanted(s.Name) {
			c.section(s.Name)
		}
	}
	for _, step := range []func(context.Context) error{
		c.backups, c.drills, c.checks, c.actionsAndReviews, c.scans, c.grants, c.kit, c.probes, c.notifications, c.checkpoints,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	for name := range c.sections {
		if name != steward {
			c.configNotes(name)
		}
	}
	for _, s := range c.sections {
		for i := range s.Controls {
			slices.SortStableFunc(s.Controls[i].Evidence, func(a, b readiness.Evidence) int { return a.At.Compare(b.At) })
		}
	}
	return nil
}

// ordered returns the Steward-wide section first, then the services in
// config order, then services only found in the evidence by name.
func (c *collector) ordered() []Section {
	out := []Section{*c.sections[steward]}
	seen := map[string]bool{steward: true}
	for _, s := range c.d.Config.Services {
		if sec, ok := c.sections[s.Name]; ok {
			out, seen[s.Name] = append(out, *sec), true
		}
	}
	var rest []string
	for name := range c.sections {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		out = append(out, *c.sections[name])
	}
	return out
}

func (c *collector) backups(ctx context.Context) error {
	runs, err := c.d.Store.BackupRunsIn(ctx, c.service, c.p)
	if err != nil {
		return err
	}
	for _, r := range runs {
		var m struct {
			Objects []struct {
				Name   string `json:"name"`
				Size   int64  `json:"size"`
				SHA256 string `json:"sha256"`
			} `json:"objects"`
			Encrypted bool `json:"encrypted"`
		}
		_ = json.Unmarshal([]byte(r.Manifest), &m)
		var b strings.Builder
		fmt.Fprintf(&b, "%s/%s %s %s: %s", r.Service, r.Backup, r.BackupID, r.State, bytesText(r.SizeBytes))
		if len(m.Objects) > 0 {
			fmt.Fprintf(&b, " in %d object(s)", len(m.Objects))
			for _, o := range m.Objects {
				fmt.Fprintf(&b, "; %s sha256 %s", o.Name, o.SHA256)
			}
		}
		if m.Encrypted {
			b.WriteString("; encrypted")
		}
		if r.FinishedAt != nil {
			fmt.Fprintf(&b, "; took %s", seconds(r.FinishedAt.Sub(r.StartedAt).Seconds()))
		}
		if r.Error != "" {
			fmt.Fprintf(&b, "; error: %s", r.Error)
		}
		ev, ok := c.ix.find("backup.run", strconv.FormatInt(r.ID, 10))
		c.add(r.Service, readiness.CtlBackups, readiness.Evidence{Kind: "backup", ID: strconv.FormatInt(r.ID, 10), At: r.StartedAt,
			Summary: b.String(), Actor: r.Actor}, ev, ok)
	}
	return nil
}

func (c *collector) drills(ctx context.Context) error {
	runs, err := c.d.Store.DrillRunsIn(ctx, c.service, c.p)
	if err != nil {
		return err
	}
	people := map[string]map[string]int{}
	for _, r := range runs {
		var rep struct {
			Mode       string `json:"mode"`
			Objectives struct {
				RTO *float64 `json:"rto_seconds"`
				RPO *float64 `json:"rpo_seconds"`
			} `json:"objectives"`
			Verifications []struct {
				Status string `json:"status"`
			} `json:"verifications"`
		}
		_ = json.Unmarshal([]byte(r.Report), &rep)
		mode := cmp.Or(rep.Mode, "drill")
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s/%s %s", mode, r.Service, r.Drill, r.State)
		fmt.Fprintf(&b, "; RTO %s (objective %s)", optSeconds(r.RTOSeconds), optSeconds(rep.Objectives.RTO))
		fmt.Fprintf(&b, "; RPO %s", optSeconds(r.RPOSeconds))
		if r.RPOSource != "" {
			fmt.Fprintf(&b, " from %s", r.RPOSource)
		}
		fmt.Fprintf(&b, " (objective %s)", optSeconds(rep.Objectives.RPO))
		if within := objectivesMet(r.RTOSeconds, rep.Objectives.RTO, r.RPOSeconds, rep.Objectives.RPO); within != "" {
			b.WriteString("; " + within)
		}
		if n := len(rep.Verifications); n > 0 {
			passed := 0
			for _, v := range rep.Verifications {
				if v.Status == "passed" {
					passed++
				}
			}
			fmt.Fprintf(&b, "; %d of %d verifications passed", passed, n)
		}
		if r.BackupID != "" {
			fmt.Fprintf(&b, "; backup %s", r.BackupID)
		}
		if r.Error != "" {
			fmt.Fprintf(&b, "; error: %s", r.Error)
		}
		id := strconv.FormatInt(r.ID, 10)
		action := "drill.run"
		if mode == "restore" {
			action = "restore.run"
		}
		ev, ok := c.ix.find(action, id)
		e := readiness.Evidence{Kind: "drill", ID: id, At: r.StartedAt, Summary: b.String(), Actor: r.Actor}
		c.add(r.Service, readiness.CtlRestoreDrill, e, ev, ok)
		if mode != "restore" && c.inPeriod(r.StartedAt) {
			c.add(r.Service, readiness.CtlDrillRotation, e, ev, ok)
			if people[r.Service] == nil {
				people[r.Service] = map[string]int{}
			}
			people[r.Service][r.Actor]++
		}
	}
	for svc, by := range people {
		var names []string
		for who, n := range by {
			names = append(names, fmt.Sprintf("%s (%d)", who, n))
		}
		slices.Sort(names)
		c.note(svc, readiness.CtlDrillRotation, "drills in the period were run by %d person(s): %s", len(by), strings.Join(names, ", "))
	}
	return nil
}

// objectivesMet says whether measured RTO and RPO were within objectives.
func objectivesMet(rto, rtoObj, rpo, rpoObj *float64) string {
	var out []string
	if rto != nil && rtoObj != nil {
		out = append(out, verdict("RTO", *rto <= *rtoObj))
	}
	if rpo != nil && rpoObj != nil {
		out = append(out, verdict("RPO", *rpo <= *rpoObj))
	}
	return strings.Join(out, ", ")
}

func verdict(what string, ok bool) string {
	if ok {
		return what + " within objective"
	}
	return what + " MISSED objective"
}

func (c *collector) checks(ctx context.Context) error {
	runs, err := c.d.Store.CheckRunsIn(ctx, c.service, c.p)
	if err != nil {
		return err
	}
	for _, r := range runs {
		var b strings.Builder
		fmt.Fprintf(&b, "check %s/%s on %s: %s, %d violation(s)", r.Service, r.Check, r.Database, r.Status, r.Violations)
		if r.RowCount != nil {
			fmt.Fprintf(&b, " in %d row(s)", *r.RowCount)
		}
		fmt.Fprintf(&b, ", %d ms", r.DurationMS)
		if r.FixAction != nil {
			fmt.Fprintf(&b, "; fix proposed as action %d", *r.FixAction)
		}
		if r.Error != "" {
			fmt.Fprintf(&b, "; error: %s", r.Error)
		}
		id := strconv.FormatInt(r.ID, 10)
		ev, ok := c.ix.find("check.run", id)
		c.add(r.Service, readiness.CtlIntegrity, readiness.Evidence{Kind: "check", ID: id, At: r.StartedAt, Summary: b.String(), Actor: r.Actor}, ev, ok)
	}
	return nil
}

// actionsAndReviews reports fixes, guarded SQL and undo (data changes),
// deploy gates (approval policy), break-glass uses and their reviews.
func (c *collector) actionsAndReviews(ctx context.Context) error {
	acts, err := c.d.Store.ActionsIn(ctx, c.service, c.p)
	if err != nil {
		return err
	}
	c.actions = map[int64]store.ActionRow{}
	type counts struct{ fixes, sql, undo, breakGlass, rows int }
	per := map[string]*counts{}
	for _, a := range acts {
		c.actions[a.ID] = a
		control, kind := "", ""
		switch a.Kind {
		case "fix.apply", "fix.undo":
			control, kind = readiness.CtlDataChanges, "fix"
		case "sql.exec":
			control, kind = readiness.CtlDataChanges, "sql"
		case "deploy.gate":
			control, kind = readiness.CtlApprovalPolicy, kindDeploy
		}
		id := strconv.FormatInt(a.ID, 10)
		target := "action:" + id
		if a.BreakGlass {
			ev, ok := c.ix.find("action.break_glass", target)
			at := a.CreatedAt
			if ok {
				at = ev.Time
			}
			c.add(a.Service, readiness.CtlBreakGlass, readiness.Evidence{Kind: kindBreakGlass, ID: id, At: at, Actor: a.Requester, Link: "/actions/" + id,
				Summary: fmt.Sprintf("break-glass %s on %s: %s; reason: %s", a.Kind, a.Service, a.State, a.Reason)}, ev, ok)
		}
		if control == "" {
			continue
		}
		approvers, err := c.approvers(ctx, a)
		if err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", a.Kind, a.PlanSummary)
		fmt.Fprintf(&b, ": %s", a.State)
		rows, hasRows := resultRows(a.Result)
		if hasRows {
			fmt.Fprintf(&b, ", %d row(s) affected", rows)
		}
		switch {
		case a.BreakGlass:
			b.WriteString(", BREAK-GLASS without approval")
		case len(approvers) > 0:
			fmt.Fprintf(&b, ", approved by %s", strings.Join(approvers, ", "))
			if a.Rule != "" {
				fmt.Fprintf(&b, " (rule %s)", a.Rule)
			}
		case a.ApprovedAt != nil && a.Rule != "":
			fmt.Fprintf(&b, ", auto-approved by rule %s", a.Rule)
		}
		if a.Risk != "" {
			fmt.Fprintf(&b, ", risk %s", a.Risk)
		}
		if kind != kindDeploy && (a.Kind == "fix.apply" || a.Kind == "sql.exec") && a.ExecutedAt != nil {
			b.WriteString("; " + c.undoText(ctx, a.ID))
		}
		if a.Ticket != "" {
			fmt.Fprintf(&b, "; ticket %s", a.Ticket)
		}
		if a.Error != "" {
			fmt.Fprintf(&b, "; error: %s", a.Error)
		}
		at := a.CreatedAt
		var ev event
		var ok bool
		for _, final := range []string{"action.succeeded", "action.failed", "action.approved", "action.plan"} {
			if ev, ok = c.ix.find(final, target); ok {
				break
			}
		}
		switch {
		case a.FinishedAt != nil:
			at = *a.FinishedAt
		case ok:
			at = ev.Time
		}
		c.add(a.Service, control, readiness.Evidence{Kind: kind, ID: id, At: at, Summary: b.String(), Actor: a.Requester, Link: "/actions/" + id}, ev, ok)
		for _, vote := range append(c.ix.all("action.approve", target), c.ix.all("action.reject", target)...) {
			s := fmt.Sprintf("%s vote on %s %d by %s", strings.TrimPrefix(vote.Action, "action."), a.Kind, a.ID, vote.Actor)
			if vote.Outcome != "ok" {
				s += " REFUSED: " + vote.str("why")
			} else if cm := vote.str("comment"); cm != "" {
				s += ": " + cm
			}
			if h := vote.str("plan_hash"); h != "" {
				s += "; plan " + short(h)
			}
			c.add(a.Service, control, readiness.Evidence{Kind: kindApproval, ID: id, At: vote.Time, Summary: s, Actor: vote.Actor, Link: "/actions/" + id}, vote, true)
		}
		if c.inPeriod(at) && control == readiness.CtlDataChanges {
			n := per[a.Service]
			if n == nil {
				n = &counts{}
				per[a.Service] = n
			}
			switch a.Kind {
			case "fix.apply":
				n.fixes++
			case "fix.undo":
				n.undo++
			case "sql.exec":
				n.sql++
			}
			if a.BreakGlass {
				n.breakGlass++
			}
			n.rows += rows
		}
	}
	for svc, n := range per {
		c.note(svc, readiness.CtlDataChanges, "%d fix(es), %d guarded SQL statement(s), %d undo(s); %d break-glass; %d row(s) changed in total",
			n.fixes, n.sql, n.undo, n.breakGlass, n.rows)
	}
	return c.reviews(ctx)
}

// approvers lists the users whose approval votes an action holds.
func (c *collector) approvers(ctx context.Context, a store.ActionRow) ([]string, error) {
	votes, err := c.d.Store.ListApprovals(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range votes {
		if v.Decision == "approve" && v.PlanHash == a.PlanHash {
			out = append(out, v.User)
		}
	}
	return out, nil
}

// resultRows reads rows_affected from an action's result.
func resultRows(result string) (int, bool) {
	var r struct {
		Details struct {
			Rows *int `json:"rows_affected"`
		} `json:"details"`
		Rows *int `json:"rows_affected"`
	}
	if json.Unmarshal([]byte(result), &r) != nil {
		return 0, false
	}
	switch {
	case r.Rows != nil:
		return *r.Rows, true
	case r.Details.Rows != nil:
		return *r.Details.Rows, true
	}
	return 0, false
}

// undoText says whether a change can be undone from its before-images.
func (c *collector) undoText(ctx context.Context, actionID int64) string {
	set, err := c.d.Store.GetFixImageSet(ctx, actionID)
	if err != nil {
		return "undo not available (no before-images)"
	}
	total, _, err := c.d.Store.CountFixImages(ctx, actionID)
	if err != nil || set.Pending() {
		return "undo not available (before-images not confirmed)"
	}
	return fmt.Sprintf("undo available from %d before-image(s): steward fix undo %d", total, actionID)
}

func (c *collector) reviews(ctx context.Context) error {
	revs, err := c.d.Store.ReviewsIn(ctx, c.p)
	if err != nil {
		return err
	}
	for _, r := range revs {
		a, ok := c.actions[r.ActionID]
		if !ok {
			if a, err = c.d.Store.GetAction(ctx, r.ActionID); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				return err
			}
		}
		id := strconv.FormatInt(r.ID, 10)
		target := "review:" + id
		var signers []string
		for _, so := range r.Signoffs {
			signers = append(signers, so.User)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "review %d of break-glass action %d by %s: %s", r.ID, r.ActionID, r.Breaker, r.State)
		fmt.Fprintf(&b, "; %d of %d sign-off(s)", len(r.Signoffs), r.Required)
		if len(signers) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(signers, ", "))
		}
		fmt.Fprintf(&b, "; deadline %s", r.Deadline.UTC().Format(time.RFC3339))
		at := r.CreatedAt
		ev, found := c.ix.find("review.complete", target)
		if r.CompletedAt != nil {
			at = *r.CompletedAt
			if r.CompletedAt.After(r.Deadline) {
				fmt.Fprintf(&b, "; completed LATE at %s", r.CompletedAt.UTC().Format(time.RFC3339))
			} else {
				fmt.Fprintf(&b, "; completed on time at %s", r.CompletedAt.UTC().Format(time.RFC3339))
			}
		} else {
			ev, found = c.ix.find("review.open", target)
			if c.p.To.After(r.Deadline) {
				b.WriteString("; OVERDUE at the end of the period")
			}
		}
		c.add(a.Service, readiness.CtlBreakGlass, readiness.Evidence{Kind: "review", ID: id, At: at, Summary: b.String(), Actor: r.Breaker, Link: "/reviews"}, ev, found)
		for _, so := range c.ix.all("review.signoff", target) {
			c.add(a.Service, readiness.CtlBreakGlass, readiness.Evidence{Kind: "review", ID: id, At: so.Time, Actor: so.Actor, Link: "/reviews",
				Summary: fmt.Sprintf("sign-off of review %d by %s: %s", r.ID, so.Actor, cmp.Or(so.str("notes"), "(no notes)"))}, so, true)
		}
	}
	return nil
}

func (c *collector) scans(ctx context.Context) error {
	scans, err := c.d.Store.AccessScansIn(ctx, c.service, c.p)
	if err != nil {
		return err
	}
	for _, s := range scans {
		id := strconv.FormatInt(s.ID, 10)
		ev, ok := c.ix.find("access.scan", id)
		var b strings.Builder
		fmt.Fprintf(&b, "standing-privilege scan of %s/%s: %s, %d finding(s)", s.Service, s.Database, s.Status, s.Findings)
		if ok {
			if p := ev.str("principals"); p != "" {
				fmt.Fprintf(&b, " among %s login role(s)", p)
			}
			if names := ev.strs("finding_principals"); len(names) > 0 {
				fmt.Fprintf(&b, ": %s", strings.Join(names, ", "))
			}
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "; error: %s", s.Error)
		}
		c.add(s.Service, readiness.CtlStandingPrivilege, readiness.Evidence{Kind: "scan", ID: id, At: s.StartedAt, Summary: b.String(), Actor: s.Actor}, ev, ok)
	}
	return nil
}

func (c *collector) grants(ctx context.Context) error {
	grants, err := c.d.Store.GrantsIn(ctx, c.service, c.p)
	if err != nil {
		return err
	}
	for _, g := range grants {
		id := strconv.FormatInt(g.ID, 10)
		target := "grant:" + id
		var approvers []string
		if g.ActionID != 0 {
			if a, err := c.d.Store.GetAction(ctx, g.ActionID); err == nil {
				if approvers, err = c.approvers(ctx, a); err != nil {
					return err
				}
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "grant %d: %s on %s/%s (%s) for %s", g.ID, g.Profile, g.Service, g.Database, g.Engine, g.Requester)
		if g.Reason != "" {
			fmt.Fprintf(&b, ", reason %s", g.Reason)
		}
		if g.BreakGlass {
			b.WriteString(", BREAK-GLASS")
		} else if len(approvers) > 0 {
			fmt.Fprintf(&b, ", approved by %s (action %d)", strings.Join(approvers, ", "), g.ActionID)
		}
		fmt.Fprintf(&b, "; role %s; expires %s; now %s", g.RoleName, g.ExpiresAt.UTC().Format(time.RFC3339), g.State)
		at := g.CreatedAt
		if g.IssuedAt != nil {
			at = *g.IssuedAt
		}
		ev, ok := c.ix.find("access.grant", target)
		c.add(g.Service, readiness.CtlGrants, readiness.Evidence{Kind: "grant", ID: id, At: at, Summary: b.String(), Actor: g.Requester}, ev, ok)

		switch {
		case g.RevokedAt != nil:
			var rec struct {
				Reason string `json:"reason"`
				By     string `json:"by"`
				Steps  []struct {
					Name string `json:"name"`
				} `json:"steps"`
				Attempts int `json:"attempts"`
			}
			_ = json.Unmarshal([]byte(g.Revocation), &rec)
			var steps []string
			for _, s := range rec.Steps {
				steps = append(steps, s.Name)
			}
			s := fmt.Sprintf("revocation of grant %d (role %s) at %s", g.ID, g.RoleName, g.RevokedAt.UTC().Format(time.RFC3339))
			if d := g.RevokedAt.Sub(g.ExpiresAt); d >= 0 {
				s += fmt.Sprintf(", %s after expiry", seconds(d.Seconds()))
			} else {
				s += fmt.Sprintf(", %s before expiry", seconds(-d.Seconds()))
			}
			if rec.Reason != "" {
				s += "; reason: " + rec.Reason
			}
			if len(steps) > 0 {
				s += "; proof: " + strings.Join(steps, ", ")
			}
			if rec.Attempts > 0 {
				s += fmt.Sprintf(" in %d attempt(s)", rec.Attempts)
			}
			rev, rok := c.ix.find("access.revoke", target)
			c.add(g.Service, readiness.CtlGrants, readiness.Evidence{Kind: kindRevocation, ID: id, At: *g.RevokedAt, Summary: s, Actor: cmp.Or(rec.By, "system:access")}, rev, rok)
		case !g.ExpiresAt.After(c.p.To) && g.IssuedAt != nil:
			c.add(g.Service, readiness.CtlGrants, readiness.Evidence{Kind: kindRevocation, ID: id, At: g.ExpiresAt,
				Summary: fmt.Sprintf("grant %d (role %s) expired at %s and was NOT revoked by the end of the period (state %s)", g.ID, g.RoleName,
					g.ExpiresAt.UTC().Format(time.RFC3339), g.State)}, event{}, false)
		}
	}
	return nil
}

// kit reports the emergency kit's creation and drills, which only the audit
// log records.
func (c *collector) kit(context.Context) error {
	for _, action := range []string{"kit.create", "kit.drill"} {
		for _, ev := range c.ix.byAction[action] {
			kind, s := kindKit, fmt.Sprintf("emergency kit %s created", strings.TrimPrefix(ev.Target, "kit:"))
			if action == "kit.drill" {
				kind = "kit-drill"
				s = fmt.Sprintf("drill of emergency kit %s: %s", strings.TrimPrefix(ev.Target, "kit:"), ev.Outcome)
				if h := ev.strs("holders"); len(h) > 0 {
					s += " with the shares of " + strings.Join(h, ", ")
				}
				if e := ev.str("error"); e != "" {
					s += "; " + e
				}
			} else if n := ev.str("shares"); n != "" {
				s += fmt.Sprintf(": %s-of-%s shares", ev.str("threshold"), n)
			}
			c.add(steward, readiness.CtlEmergencyKit, readiness.Evidence{Kind: kind, ID: strings.TrimPrefix(ev.Target, "kit:"), At: ev.Time, Summary: s, Actor: ev.Actor}, ev, true)
		}
	}
	return nil
}

// probes reports each probe's availability per location over the period,
// computed from its results and rollups (no audit event records them).
func (c *collector) probes(ctx context.Context) error {
	av, err := c.d.Store.ProbeAvailabilityIn(ctx, c.service, c.p)
	if err != nil {
		return err
	}
	for _, a := range av {
		var b strings.Builder
		fmt.Fprintf(&b, "probe %s/%s from %s: ", a.Service, a.Probe, cmp.Or(a.Location, "local"))
		if a.Runs > 0 {
			fmt.Fprintf(&b, "availability %s (%d of %d runs up, %d down, %d error(s))", percent(a.Up, a.Runs), a.Up, a.Runs, a.Down, a.Errors)
			fmt.Fprintf(&b, ", mean %d ms, max %d ms", a.DurationSumMS/a.Runs, a.DurationMaxMS)
		} else {
			b.WriteString("no runs")
		}
		if a.Missed > 0 {
			fmt.Fprintf(&b, "; %d run(s) missed", a.Missed)
		}
		if obj, ok := c.sloObjective(a.Service, a.Probe); ok && a.Up+a.Down > 0 {
			// Like the SLO: runs that could not decide (errors, misses) are
			// left out.
			got := float64(a.Up) / float64(a.Up+a.Down)
			fmt.Fprintf(&b, "; SLO %s: %s of %d deciding runs up, ", obj.text, percent(a.Up, a.Up+a.Down), a.Up+a.Down)
			if got >= obj.target {
				b.WriteString("objective met over the period")
			} else {
				b.WriteString("objective MISSED over the period")
			}
		}
		// A summary of the whole period: stamped with its end.
		c.add(a.Service, readiness.CtlProbesSLO, readiness.Evidence{Kind: "probe", ID: a.Service + "/" + a.Probe + "@" + cmp.Or(a.Location, "local"),
			At: c.p.To, Summary: b.String(), Link: "/probes/" + a.Service + "/" + a.Probe}, event{}, false)
	}
	for name := range c.sections {
		if sc := c.serviceConfig(name); sc != nil && len(sc.Probes) > 0 {
			var names []string
			for _, p := range sc.Probes {
				locs := p.Locations
				if len(locs) == 0 {
					locs = []string{"local"}
				}
				names = append(names, fmt.Sprintf("%s (%s, every %s, from %s)", p.Name, p.Type, p.Interval, strings.Join(locs, ", ")))
			}
			c.note(name, readiness.CtlProbesSLO, "configured probes: %s", strings.Join(names, "; "))
		}
	}
	return nil
}

// slo is an availability objective from the config.
type slo struct {
	target float64 // 0..1
	text   string  // as configured, with its window
}

// sloObjective returns the availability objective of a probe: its own, else
// its service's.
func (c *collector) sloObjective(service, probe string) (slo, bool) {
	sc := c.serviceConfig(service)
	if sc == nil {
		return slo{}, false
	}
	cand := []config.SLO{sc.SLO}
	if p := sc.Probe(probe); p != nil {
		cand = []config.SLO{p.SLO, sc.SLO}
	}
	for _, o := range cand {
		if o.Availability == "" {
			continue
		}
		v := strings.TrimSuffix(strings.TrimSpace(o.Availability), "%")
		f, err := config.ParsePercent(v + "%")
		if err != nil {
			continue
		}
		return slo{target: f, text: fmt.Sprintf("availability %s%% over %s", v, cmp.Or(o.Window, "30d"))}, true
	}
	return slo{}, false
}

// notifications reports deliveries from the outbox (which the audit log does
// not record) and notification tests (which it does).
func (c *collector) notifications(ctx context.Context) error {
	rows, err := c.d.Store.OutboxIn(ctx, "", c.p)
	if err != nil {
		return err
	}
	for _, r := range rows {
		svc := r.Service
		s := fmt.Sprintf("%s notification %q to channel %s: %s after %d attempt(s)", r.Severity, r.Event, r.Channel, r.State, r.Attempts)
		at := r.CreatedAt
		if r.DeliveredAt != nil {
			at = *r.DeliveredAt
			s += fmt.Sprintf(", delivered %s", r.DeliveredAt.UTC().Format(time.RFC3339))
		}
		if r.LastError != "" {
			s += "; last error: " + r.LastError
		}
		c.add(svc, readiness.CtlAlertChannels, readiness.Evidence{Kind: "notify", ID: strconv.FormatInt(r.ID, 10), At: at, Summary: s}, event{}, false)
	}
	for _, ev := range c.ix.byAction["notify.test"] {
		c.add(steward, readiness.CtlAlertChannels, readiness.Evidence{Kind: "notify", At: ev.Time, Actor: ev.Actor,
			Summary: fmt.Sprintf("test notification to %s: %s", ev.Target, ev.Outcome)}, ev, true)
	}
	return nil
}

// checkpoints reports the checkpoints signed in the period.
func (c *collector) checkpoints(context.Context) error {
	for _, ev := range c.ix.byAction["audit.checkpoint"] {
		c.add(steward, readiness.CtlAuditLog, readiness.Evidence{Kind: "checkpoint", ID: strconv.FormatInt(ev.Seq, 10), At: ev.Time, Actor: ev.Actor,
			Summary: fmt.Sprintf("signed checkpoint of %s at size %d with key %s", ev.Target, ev.Seq, ev.str("key"))}, ev, true)
	}
	for name := range c.sections {
		if name != steward {
			c.note(name, readiness.CtlAuditLog, "Steward-wide: see the audit log control of the Steward-wide section and the checkpoint of this report")
			c.note(name, readiness.CtlEmergencyKit, "Steward-wide: see the emergency kit control of the Steward-wide section")
		}
	}
	return nil
}

// configNotes adds what the configuration says at report time: contacts and
// the approval rules that apply to the service.
func (c *collector) configNotes(name string) {
	sc := c.serviceConfig(name)
	if sc == nil {
		return
	}
	for _, ct := range []struct {
		role string
		c    config.Contact
	}{{"on-call", sc.Contacts.Oncall}, {"escalation", sc.Contacts.Escalation}, {"provider NOC", sc.Contacts.ProviderNOC}, {"provider SIRT", sc.Contacts.ProviderSIRT}} {
		if ct.c.IsZero() {
			c.note(name, readiness.CtlContacts, "%s: NONE on file (configuration at report time)", ct.role)
			continue
		}
		var parts []string
		for _, p := range []string{ct.c.Name, ct.c.Phone, ct.c.Email, ct.c.URL} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		c.note(name, readiness.CtlContacts, "%s: %s (configuration at report time)", ct.role, strings.Join(parts, ", "))
	}
	for _, r := range c.d.Config.Policies.Approvals {
		if !ruleApplies(r, name) {
			continue
		}
		c.note(name, readiness.CtlApprovalPolicy, "approval rule %s: %s (configuration at report time)", r.Name, ruleText(r))
	}
}
