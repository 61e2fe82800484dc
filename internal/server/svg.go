package server

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// Charts for the service page, rendered on the server as inline SVG: no
// script, no inline style (colours come from classes in steward.css), an
// accessible <title> and <desc>, and a <title> on every point for a
// tooltip. Numbers are formatted with one decimal, which is plenty at the
// chart's size and keeps the markup short.

// Drill chart geometry, in SVG user units (the viewBox); the chart scales
// to the width of its container.
const (
	chartW      = 640.0
	chartH      = 240.0
	chartLeft   = 64.0 // room for the y axis labels
	chartRight  = 16.0
	chartTop    = 16.0
	chartBottom = 40.0 // room for the x axis labels and the legend
)

// drillPoint is one drill on the chart.
type drillPoint struct {
	ID     int64
	At     time.Time
	State  string
	RTO    *time.Duration // measured; nil when the drill did not get that far
	RPO    *time.Duration
	Reason string // why it failed, for the tooltip
}

// plotArea maps times and durations to chart coordinates.
type plotArea struct {
	t0, t1 time.Time
	max    time.Duration
}

// newPlotArea fits points and the objectives (0: none) with 10% headroom.
func newPlotArea(points []drillPoint, objectives ...time.Duration) plotArea {
	a := plotArea{t0: points[0].At, t1: points[0].At}
	for _, p := range points {
		if p.At.Before(a.t0) {
			a.t0 = p.At
		}
		if p.At.After(a.t1) {
			a.t1 = p.At
		}
		for _, d := range []*time.Duration{p.RTO, p.RPO} {
			if d != nil && *d > a.max {
				a.max = *d
			}
		}
	}
	for _, o := range objectives {
		if o > a.max {
			a.max = o
		}
	}
	a.max = niceCeil(a.max + a.max/10)
	return a
}

// x is the horizontal position of t; a single instant sits in the middle.
func (a plotArea) x(t time.Time) float64 {
	w := chartW - chartLeft - chartRight
	span := a.t1.Sub(a.t0)
	if span <= 0 {
		return chartLeft + w/2
	}
	return chartLeft + w*float64(t.Sub(a.t0))/float64(span)
}

// y is the vertical position of d: 0 at the bottom, a.max at the top.
func (a plotArea) y(d time.Duration) float64 {
	h := chartH - chartTop - chartBottom
	if a.max <= 0 {
		return chartTop + h
	}
	return chartTop + h - h*float64(d)/float64(a.max)
}

// niceSteps are round axis maxima, so that the top and the middle of the
// axis read well as durations.
var niceSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// niceCeil rounds d up to a round axis maximum (at least one second; past
// a day, whole days).
func niceCeil(d time.Duration) time.Duration {
	for _, s := range niceSteps {
		if d <= s {
			return s
		}
	}
	day := 24 * time.Hour
	return (d + day - 1) / day * day
}

// shortDuration formats d for an axis or a tooltip, to the second and
// without zero parts: 45s, 12m30s, 2h, 1h5m.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "0s"
	}
	h, m, sec := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec > 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

// drillChart renders the RTO and RPO of each drill over time, with the
// service's objectives as dashed lines (0: no objective). With no drills it
// says so instead of drawing empty axes.
func drillChart(service string, points []drillPoint, rtoObj, rpoObj time.Duration) template.HTML {
	if len(points) == 0 {
		return `<p class="chart-empty">No drills yet.</p>`
	}
	a := newPlotArea(points, rtoObj, rpoObj)
	esc := template.HTMLEscapeString
	var b strings.Builder
	measured, failed := 0, 0
	for _, p := range points {
		if p.RTO != nil || p.RPO != nil {
			measured++
		}
		if p.State != "passed" {
			failed++
		}
	}
	desc := fmt.Sprintf("%d drills from %s to %s; %d measured, %d not passed.", len(points),
		a.t0.UTC().Format("2006-01-02"), a.t1.UTC().Format("2006-01-02"), measured, failed)
	if rtoObj > 0 {
		desc += " RTO objective " + shortDuration(rtoObj) + "."
	}
	if rpoObj > 0 {
		desc += " RPO objective " + shortDuration(rpoObj) + "."
	}
	fmt.Fprintf(&b, `<svg class="chart drill-chart" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="drill-chart-title drill-chart-desc" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH)
	fmt.Fprintf(&b, `<title id="drill-chart-title">Restore drills of %s: RTO and RPO over time</title>`, esc(service))
	fmt.Fprintf(&b, `<desc id="drill-chart-desc">%s</desc>`, esc(desc))

	// Axes and y grid: 0, half and the maximum.
	bottom, left, right := chartH-chartBottom, chartLeft, chartW-chartRight
	fmt.Fprintf(&b, `<g class="axis">`)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, chartTop, left, bottom)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, bottom, right, bottom)
	for _, f := range []float64{0, 0.5, 1} {
		d := time.Duration(f * float64(a.max))
		y := a.y(d)
		if f > 0 {
			fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, y, right, y)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-6, y+4, shortDuration(d))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="start">%s</text>`, left, bottom+16, a.t0.UTC().Format("2006-01-02"))
	if a.t1.Sub(a.t0) > 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, right, bottom+16, a.t1.UTC().Format("2006-01-02"))
	}
	fmt.Fprintf(&b, `</g>`)

	// Objectives.
	for _, o := range []struct {
		class, label string
		d            time.Duration
	}{{"objective rto", "RTO objective", rtoObj}, {"objective rpo", "RPO objective", rpoObj}} {
		if o.d <= 0 {
			continue
		}
		y := a.y(o.d)
		fmt.Fprintf(&b, `<g class="%s"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/><text x="%.1f" y="%.1f" text-anchor="end">%s %s</text></g>`,
			o.class, left, y, right, y, right, y-4, o.label, shortDuration(o.d))
	}

	// Points: RTO as circles, RPO as squares; a drill that measured nothing
	// is a cross on the time axis.
	for _, p := range points {
		x := a.x(p.At)
		tip := fmt.Sprintf("Drill #%d, %s, %s", p.ID, p.At.UTC().Format("2006-01-02 15:04Z"), p.State)
		state := "ok"
		if p.State != "passed" {
			state = "bad"
		}
		if p.RTO != nil {
			fmt.Fprintf(&b, `<circle class="point rto %s" cx="%.1f" cy="%.1f" r="4"><title>%s: RTO %s</title></circle>`,
				state, x, a.y(*p.RTO), esc(tip), shortDuration(*p.RTO))
		}
		if p.RPO != nil {
			y := a.y(*p.RPO)
			fmt.Fprintf(&b, `<rect class="point rpo %s" x="%.1f" y="%.1f" width="7" height="7"><title>%s: RPO %s</title></rect>`,
				state, x-3.5, y-3.5, esc(tip), shortDuration(*p.RPO))
		}
		if p.RTO == nil && p.RPO == nil {
			why := ""
			if p.Reason != "" {
				why = ": " + p.Reason
			}
			fmt.Fprintf(&b, `<path class="point failed" d="M%.1f %.1fl8 8m0 -8l-8 8"><title>%s%s</title></path>`,
				x-4, bottom-4, esc(tip), esc(why))
		}
	}

	// Legend.
	ly := chartH - 8
	fmt.Fprintf(&b, `<g class="legend"><circle class="point rto ok" cx="%.1f" cy="%.1f" r="4"/><text x="%.1f" y="%.1f">RTO</text>`, left+4, ly-4, left+12, ly)
	fmt.Fprintf(&b, `<rect class="point rpo ok" x="%.1f" y="%.1f" width="7" height="7"/><text x="%.1f" y="%.1f">RPO</text>`, left+56, ly-7.5, left+68, ly)
	fmt.Fprintf(&b, `<path class="point failed" d="M%.1f %.1fl8 8m0 -8l-8 8"/><text x="%.1f" y="%.1f">failed before measuring</text></g>`, left+112, ly-8, left+124, ly)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Sparkline geometry: one bar per run, newest on the right.
const (
	sparkBarW = 6.0
	sparkGap  = 2.0
	sparkH    = 20.0
)

// sparkRun is one check run on a sparkline.
type sparkRun struct {
	At         time.Time
	Status     string // pass, fail, error, ...
	Violations int64
}

// sparkline renders runs (oldest first) as a row of bars: full height for a
// failed or erroring run, two thirds for a warning, a short bar for a pass.
func sparkline(check string, runs []sparkRun) template.HTML {
	if len(runs) == 0 {
		return `<span class="missing">no runs yet</span>`
	}
	esc := template.HTMLEscapeString
	bad := 0
	for _, r := range runs {
		if r.Status != "pass" {
			bad++
		}
	}
	w := float64(len(runs))*(sparkBarW+sparkGap) - sparkGap
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="sparkline" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" xmlns="http://www.w3.org/2000/svg">`, w, sparkH, w, sparkH)
	fmt.Fprintf(&b, `<title>%s: last %d runs, %d not passing</title>`, esc(check), len(runs), bad)
	for i, r := range runs {
		class, h := "error", sparkH
		switch r.Status {
		case "pass":
			class, h = "pass", sparkH/3
		case "warn":
			class, h = "warn", sparkH*2/3
		case "fail":
			class = "fail"
		}
		fmt.Fprintf(&b, `<rect class="bar %s" x="%.1f" y="%.1f" width="%.0f" height="%.1f"><title>%s %s, %d violations</title></rect>`,
			class, float64(i)*(sparkBarW+sparkGap), sparkH-h, sparkBarW, h, r.At.UTC().Format("2006-01-02 15:04Z"), esc(r.Status), r.Violations)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
