package server

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/probe/slowatch"
	"github.com/stewardhq/steward/internal/store"
)

// apiSLO answers GET /api/v1/slo[?service=]: the status of every objective
// (of one service), the probes' states and the open alerts, as steward slo
// status prints them.
func (s *Server) apiSLO(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	service := r.URL.Query().Get("service")
	cfg := s.snap.Load().config
	if cfg == nil || (service != "" && cfg.Service(service) == nil) {
		return fmt.Errorf("service %q: %w", service, store.ErrNotFound)
	}
	st, err := slowatch.Report(r.Context(), s.store, cfg, service, s.now())
	if errors.Is(err, slowatch.ErrUnknownService) {
		return fmt.Errorf("%v: %w", err, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, st)
	return nil
}

// probeSLOFragment answers GET /probes/{service}/{probe}/slo: the SLO part
// of the probe's page (objectives, charts, open alerts) for an htmx request,
// as the service page embeds it; a browser without htmx is sent to the
// probe's page.
func (s *Server) probeSLOFragment(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	p, err := s.configuredProbe(r)
	if err != nil {
		return err
	}
	if r.Header.Get("HX-Request") != "true" {
		http.Redirect(w, r, "/probes/"+url.PathEscape(p.Service)+"/"+url.PathEscape(p.Name)+"#probe-slo", http.StatusSeeOther)
		return nil
	}
	d := s.probeSLOData(r, p.Service, p.Name, s.now())
	if d == nil {
		_, err := io.WriteString(w, `<p class="missing">No SLO is defined for this probe.</p>`)
		return err
	}
	s.renderTemplate(w, r, http.StatusOK, "probe", "probe_slo", d)
	return nil
}

// probeSLO is the SLO part of a probe's page.
type probeSLO struct {
	Objectives []slowatch.ObjectiveStatus
	Charts     []template.HTML
	State      *slowatch.ProbeState
	Alerts     []slowatch.Alert
	Error      string // why the SLO could not be computed
}

// probeSLOData computes the SLO part of the page of service/probe; nil when
// the probe has no objective and no alert state.
func (s *Server) probeSLOData(r *http.Request, service, probe string, now time.Time) *probeSLO {
	cfg := s.snap.Load().config
	if cfg == nil || cfg.Service(service) == nil {
		return nil
	}
	view, err := slowatch.LoadProbe(r.Context(), s.store, cfg, service, probe, now)
	var st *slowatch.Status
	if err == nil {
		st, err = view.Status(r.Context())
	}
	if err != nil {
		s.log.Error("slo status for probe page", "service", service, "probe", probe, "err", err)
		return &probeSLO{Error: "The SLO status could not be computed; see the server log."}
	}
	d := &probeSLO{}
	for _, o := range st.Objectives {
		if o.Probe == probe {
			d.Objectives = append(d.Objectives, o)
		}
	}
	for i := range st.Probes {
		if st.Probes[i].Probe == probe {
			d.State = &st.Probes[i]
		}
	}
	for _, a := range st.Alerts {
		if a.Probe == probe {
			d.Alerts = append(d.Alerts, a)
		}
	}
	for _, c := range view.Charts(service, probe) {
		d.Charts = append(d.Charts, budgetChart(service+"/"+probe, c), burnChart(service+"/"+probe, c))
	}
	return d
}

// SLO chart geometry, in SVG user units.
const (
	sloW      = 640.0
	sloH      = 200.0
	sloLeft   = 56.0
	sloRight  = 16.0
	sloTop    = 16.0
	sloBottom = 36.0
)

// sloArea maps chart points to coordinates: times across, values from lo
// (bottom) to hi (top).
type sloArea struct {
	t0, t1 time.Time
	lo, hi float64
}

func (a sloArea) x(t time.Time) float64 {
	w := sloW - sloLeft - sloRight
	span := a.t1.Sub(a.t0)
	if span <= 0 {
		return sloLeft + w/2
	}
	return sloLeft + w*float64(t.Sub(a.t0))/float64(span)
}

func (a sloArea) y(v float64) float64 {
	h := sloH - sloTop - sloBottom
	v = math.Max(a.lo, math.Min(a.hi, v))
	return sloTop + h - h*(v-a.lo)/(a.hi-a.lo)
}

// sloFrame writes the opening tag, title, description, axes and the y
// labels of a chart.
func sloFrame(b *strings.Builder, id, title, desc string, a sloArea, ticks []float64, label func(float64) string) {
	esc := template.HTMLEscapeString
	fmt.Fprintf(b, `<svg class="chart slo-chart" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="%s-title %s-desc" xmlns="http://www.w3.org/2000/svg">`, sloW, sloH, id, id)
	fmt.Fprintf(b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(title), id, esc(desc))
	bottom, left, right := sloH-sloBottom, sloLeft, sloW-sloRight
	b.WriteString(`<g class="axis">`)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, sloTop, left, bottom)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, bottom, right, bottom)
	for _, v := range ticks {
		y := a.y(v)
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, y, right, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-6, y+4, label(v))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="start">%s</text>`, left, bottom+16, a.t0.UTC().Format("2006-01-02 15:04Z"))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, right, bottom+16, a.t1.UTC().Format("2006-01-02 15:04Z"))
	b.WriteString(`</g>`)
}

// sloLine writes points as a polyline with a dot and tooltip per point.
func sloLine(b *strings.Builder, class string, a sloArea, pts []slowatch.ChartPoint, tip func(slowatch.ChartPoint) string) {
	var coords []string
	for _, p := range pts {
		coords = append(coords, fmt.Sprintf("%.1f,%.1f", a.x(p.At), a.y(p.Value)))
	}
	fmt.Fprintf(b, `<polyline class="series %s" points="%s"/>`, class, strings.Join(coords, " "))
	for _, p := range pts {
		fmt.Fprintf(b, `<circle class="point %s" cx="%.1f" cy="%.1f" r="2.5"><title>%s</title></circle>`,
			class, a.x(p.At), a.y(p.Value), template.HTMLEscapeString(tip(p)))
	}
}

// budgetChart draws the error budget remaining at the end of each day of
// the objective's window; below zero the budget is overspent.
func budgetChart(target string, c slowatch.Chart) template.HTML {
	if len(c.Budget) == 0 {
		return ""
	}
	lo := 0.0
	for _, p := range c.Budget {
		lo = math.Min(lo, p.Value)
	}
	lo = math.Max(math.Floor(lo), -5) // deeper overspending is clipped at -500%
	a := sloArea{t0: c.Budget[0].At, t1: c.Budget[len(c.Budget)-1].At, lo: lo, hi: 1}
	last := c.Budget[len(c.Budget)-1].Value
	var b strings.Builder
	id := "slo-budget-" + c.Objective
	sloFrame(&b, id, fmt.Sprintf("Error budget remaining of %s, %s %.4g%%", target, c.Objective, c.Target),
		fmt.Sprintf("Daily points over the objective window; now %.1f%% of the budget is left.", last*100),
		a, []float64{lo, 0, 0.5, 1}, func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) })
	y0 := a.y(0)
	fmt.Fprintf(&b, `<line class="zero" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, sloLeft, y0, sloW-sloRight, y0)
	class := "budget"
	if last <= 0 {
		class += " bad"
	}
	sloLine(&b, class, a, c.Budget, func(p slowatch.ChartPoint) string {
		return fmt.Sprintf("%s: %.1f%% of the budget left", p.At.UTC().Format("2006-01-02 15:04Z"), p.Value*100)
	})
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text
}

// burnChart draws the burn rate over the shortest page window at each hour
// of the last two days, with the page threshold as a dashed line.
func burnChart(target string, c slowatch.Chart) template.HTML {
	if len(c.BurnRate) == 0 {
		return ""
	}
	hi := c.BurnPage * 1.5
	for _, p := range c.BurnRate {
		hi = math.Max(hi, p.Value)
	}
	hi = math.Min(hi, c.BurnPage*4) // spikes far above the threshold are clipped
	a := sloArea{t0: c.BurnRate[0].At, t1: c.BurnRate[len(c.BurnRate)-1].At, lo: 0, hi: hi}
	var b strings.Builder
	id := "slo-burn-" + c.Objective
	sloFrame(&b, id, fmt.Sprintf("Burn rate of %s, %s, over %s", target, c.Objective, c.BurnWindow),
		fmt.Sprintf("Hourly points over the last two days; the page threshold is %.4g.", c.BurnPage),
		a, []float64{0, hi / 2, hi}, func(v float64) string { return fmt.Sprintf("%.3g", v) })
	y := a.y(c.BurnPage)
	fmt.Fprintf(&b, `<g class="objective burn"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><text x="%.1f" y="%.1f" text-anchor="end">page at %.4g</text></g>`,
		sloLeft, y, sloW-sloRight, y, sloW-sloRight, y-4, c.BurnPage)
	sloLine(&b, "burn", a, c.BurnRate, func(p slowatch.ChartPoint) string {
		return fmt.Sprintf("%s: burn rate %.2f over %s", p.At.UTC().Format("2006-01-02 15:04Z"), p.Value, c.BurnWindow)
	})
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text
}
