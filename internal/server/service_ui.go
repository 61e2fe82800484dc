package server

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/fix"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// What the service page loads. Each section is one query for the service,
// whatever its number of drills, checks or grants (no query per row).
const (
	serviceDrills   = 60  // drills on the chart
	serviceDrillRow = 10  // of which listed in the table
	serviceCheckRun = 500 // check runs read for the trends
	sparkRuns       = 20  // runs per check on its sparkline
	serviceActions  = 100 // recent actions searched for fixes
	serviceGrants   = 100 // grants, active and past
	servicePast     = 20  // past grants listed
	serviceBackups  = 10  // backup runs listed
)

// drillRow is a drill in the service page's table.
type drillRow struct {
	store.DrillRunRow
	RTO, RPO string // "" when not measured
	RTOMiss  bool   // measured above the objective
	RPOMiss  bool
}

// backupRow is a backup run in the service page's table.
type backupRow struct {
	store.BackupRun
	Size string
}

// checkTrend is one integrity check with its recent runs.
type checkTrend struct {
	Name, Database string
	Last           store.CheckRunRow
	Runs, Bad      int // runs on the sparkline and how many did not pass
	Spark          template.HTML
}

// probeLine is one probe of the service with its latest result per location.
type probeLine struct {
	Name, Type string
	Results    []store.ProbeResultRow // newest per location; none when never run
}

type serviceData struct {
	serviceJSON
	Score      scoreView
	Card       *readiness.ServiceCard
	Counts     statusCounts
	RTO, RPO   string // objectives, "" when not set
	DrillChart template.HTML
	Backups    []backupRow
	Drills     []drillRow
	DrillCount int
	Checks     []checkTrend
	Fixes      []*action.Action
	Active     []store.GrantRow
	Past       []store.GrantRow
	Probes     []probeLine
	Actions    bool // the pipeline is wired
}

func (s *Server) servicePage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	name := r.PathValue("name")
	snap := s.snap.Load()
	svc, ok := snap.service(name)
	if !ok {
		return fmt.Errorf("service %q: %w", name, store.ErrNotFound)
	}
	ctx := r.Context()
	d := serviceData{serviceJSON: svc, Actions: s.actions != nil}

	d.Score = s.scorecard(ctx, r, name)
	if c := d.Score.Card; c != nil {
		for i := range c.Services {
			if c.Services[i].Service == name {
				d.Card = &c.Services[i]
				for _, res := range d.Card.Results {
					d.Counts.add(res.Status)
				}
			}
		}
	}

	var rtoObj, rpoObj time.Duration
	if snap.config != nil {
		if i := slices.IndexFunc(snap.config.Services, func(c config.Service) bool { return c.Name == name }); i >= 0 {
			o := snap.config.Services[i].Objectives
			rtoObj, _ = config.ParseDuration(o.RTO)
			rpoObj, _ = config.ParseDuration(o.RPO)
			d.RTO, d.RPO = o.RTO, o.RPO
		}
	}

	backups, err := s.store.ListBackupRuns(ctx, store.BackupRunFilter{Service: name, Limit: serviceBackups})
	if err != nil {
		return err
	}
	for _, b := range backups {
		b.Error = firstLine(b.Error)
		d.Backups = append(d.Backups, backupRow{BackupRun: b, Size: humanSize(b.SizeBytes)})
	}

	drills, err := s.store.ListDrillRuns(ctx, store.DrillRunFilter{Service: name, Limit: serviceDrills})
	if err != nil {
		return err
	}
	d.DrillCount = len(drills)
	points := make([]drillPoint, 0, len(drills))
	for i := len(drills) - 1; i >= 0; i-- { // oldest first
		dr := drills[i]
		if dr.State == store.DrillRunning {
			continue
		}
		pt := drillPoint{ID: dr.ID, At: dr.StartedAt, State: dr.State, RTO: seconds(dr.RTOSeconds), RPO: seconds(dr.RPOSeconds), Reason: firstLine(dr.Error)}
		points = append(points, pt)
	}
	d.DrillChart = drillChart(name, points, rtoObj, rpoObj)
	for _, dr := range drills[:min(len(drills), serviceDrillRow)] {
		row := drillRow{DrillRunRow: dr}
		if v := seconds(dr.RTOSeconds); v != nil {
			row.RTO, row.RTOMiss = shortDuration(*v), rtoObj > 0 && *v > rtoObj
		}
		if v := seconds(dr.RPOSeconds); v != nil {
			row.RPO, row.RPOMiss = shortDuration(*v), rpoObj > 0 && *v > rpoObj
		}
		row.Error = firstLine(dr.Error)
		d.Drills = append(d.Drills, row)
	}

	runs, err := s.store.ListCheckRuns(ctx, store.CheckRunFilter{Service: name, Limit: serviceCheckRun})
	if err != nil {
		return err
	}
	d.Checks = checkTrends(runs)

	if s.actions != nil {
		acts, err := s.actions.List(ctx, store.ActionFilter{Service: name, Limit: serviceActions})
		if err != nil {
			return err
		}
		for _, a := range acts {
			switch a.Kind {
			case fix.ApplyKindName, fix.UndoKindName, fix.SQLKindName:
				d.Fixes = append(d.Fixes, a)
			}
		}
	}

	grants, err := s.store.ListGrants(ctx, store.GrantFilter{Service: name, Limit: serviceGrants})
	if err != nil {
		return err
	}
	for _, g := range grants {
		switch g.State {
		case access.StateIssuing, access.StateActive, access.StateRevoking:
			d.Active = append(d.Active, g)
		default:
			if len(d.Past) < servicePast {
				d.Past = append(d.Past, g)
			}
		}
	}

	latest, err := s.store.LatestProbeResults(ctx, name)
	if err != nil {
		return err
	}
	for _, pc := range snap.probes {
		if pc.Service != name {
			continue
		}
		pl := probeLine{Name: pc.Name, Type: pc.Type}
		for _, res := range latest {
			if res.Probe == pc.Name {
				pl.Results = append(pl.Results, res)
			}
		}
		d.Probes = append(d.Probes, pl)
	}

	s.render(w, r, http.StatusOK, "service", page{Title: svc.Name, Nav: "services", User: p.User.Name, Data: d})
	return nil
}

// checkTrends groups runs (newest first) by check, in name order, with the
// last sparkRuns runs of each on a sparkline.
func checkTrends(runs []store.CheckRunRow) []checkTrend {
	byCheck := map[string][]store.CheckRunRow{}
	var names []string
	for _, r := range runs {
		if _, ok := byCheck[r.Check]; !ok {
			names = append(names, r.Check)
		}
		byCheck[r.Check] = append(byCheck[r.Check], r)
	}
	slices.Sort(names)
	out := make([]checkTrend, 0, len(names))
	for _, n := range names {
		rs := byCheck[n]
		rs = rs[:min(len(rs), sparkRuns)]
		spark := make([]sparkRun, len(rs))
		ct := checkTrend{Name: n, Database: rs[0].Database, Last: rs[0], Runs: len(rs)}
		for i, r := range rs {
			spark[len(rs)-1-i] = sparkRun{At: r.StartedAt, Status: r.Status, Violations: r.Violations}
			if r.Status != "pass" {
				ct.Bad++
			}
		}
		ct.Spark = sparkline(n, spark)
		out = append(out, ct)
	}
	return out
}

// humanSize formats a byte count: 512 B, 3.4 MiB.
func humanSize(n int64) string {
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

func seconds(s *float64) *time.Duration {
	if s == nil {
		return nil
	}
	d := time.Duration(*s * float64(time.Second))
	return &d
}

// firstLine shortens a multi-line error for a table cell or a tooltip.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// drillData is a drill's page: the evidence a drill link points to.
type drillData struct {
	drillRow
	RTOObjective, RPOObjective string
	Report                     string // the drill's report, indented JSON
}

func (s *Server) drillPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "drill")
	if err != nil {
		return err
	}
	dr, err := s.store.GetDrillRun(r.Context(), id)
	if err != nil {
		return err
	}
	d := drillData{drillRow: drillRow{DrillRunRow: dr}, Report: indentJSON(json.RawMessage(dr.Report))}
	var rtoObj, rpoObj time.Duration
	if c := s.snap.Load().config; c != nil {
		if i := slices.IndexFunc(c.Services, func(svc config.Service) bool { return svc.Name == dr.Service }); i >= 0 {
			o := c.Services[i].Objectives
			d.RTOObjective, d.RPOObjective = o.RTO, o.RPO
			rtoObj, _ = config.ParseDuration(o.RTO)
			rpoObj, _ = config.ParseDuration(o.RPO)
		}
	}
	if v := seconds(dr.RTOSeconds); v != nil {
		d.RTO, d.RTOMiss = shortDuration(*v), rtoObj > 0 && *v > rtoObj
	}
	if v := seconds(dr.RPOSeconds); v != nil {
		d.RPO, d.RPOMiss = shortDuration(*v), rpoObj > 0 && *v > rpoObj
	}
	s.render(w, r, http.StatusOK, "drill", page{Title: fmt.Sprintf("Drill #%d", dr.ID), Nav: "services", User: p.User.Name, Data: d})
	return nil
}
