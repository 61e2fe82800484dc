package server

import (
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
	"time"
)

// svgNode is a parsed SVG element, enough to assert on the chart's shapes.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []svgNode  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n svgNode) num(t *testing.T, name string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.XMLName.Local, name, n.attr(name), err)
	}
	return f
}

// find returns the elements named local whose class has every word of class.
func (n svgNode) find(local, class string) []svgNode {
	var out []svgNode
	var walk func(svgNode)
	walk = func(c svgNode) {
		if c.XMLName.Local == local && hasClasses(c.attr("class"), class) {
			out = append(out, c)
		}
		for _, k := range c.Children {
			walk(k)
		}
	}
	walk(n)
	return out
}

func hasClasses(have, want string) bool {
	words := strings.Fields(have)
	for _, w := range strings.Fields(want) {
		found := false
		for _, h := range words {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

func parseSVG(t *testing.T, s string) svgNode {
	t.Helper()
	var n svgNode
	if err := xml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatalf("not well-formed SVG: %v\n%s", err, s)
	}
	if n.XMLName.Local != "svg" {
		t.Fatalf("root is <%s>, want <svg>", n.XMLName.Local)
	}
	return n
}

func dur(d time.Duration) *time.Duration { return &d }

func TestDrillChartEmpty(t *testing.T) {
	t.Parallel()
	got := string(drillChart("shop", nil, time.Hour, time.Hour))
	if !strings.Contains(got, "No drills yet.") || strings.Contains(got, "<svg") {
		t.Fatalf("empty chart: %s", got)
	}
}

func TestDrillChartScales(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 10, 1, 3, 0, 0, 0, time.UTC)
	points := []drillPoint{
		{ID: 1, At: t0, State: "passed", RTO: dur(10 * time.Minute), RPO: dur(30 * time.Minute)},
		{ID: 2, At: t0.Add(10 * 24 * time.Hour), State: "passed", RTO: dur(20 * time.Minute), RPO: dur(5 * time.Minute)},
		{ID: 3, At: t0.Add(20 * 24 * time.Hour), State: "failed", Reason: "pg_restore <exit 1>"},
	}
	// Objectives 30m RTO, 25m RPO: the axis goes to niceCeil(33m) = 1h.
	svg := parseSVG(t, string(drillChart(`shop "<x>"`, points, 30*time.Minute, 25*time.Minute)))

	a := newPlotArea(points, 30*time.Minute, 25*time.Minute)
	if a.max != time.Hour {
		t.Fatalf("axis max %v, want 1h", a.max)
	}
	top, bottom := chartTop, chartH-chartBottom
	left, right := chartLeft, chartW-chartRight

	rto := svg.find("circle", "point rto")
	rto = rto[:len(rto)-1] // the last one is the legend's
	if len(rto) != 2 {
		t.Fatalf("%d RTO points, want 2", len(rto))
	}
	// The first drill is on the left edge, the last (failed) on the right,
	// the second at half the time span.
	if x := rto[0].num(t, "cx"); x != left {
		t.Errorf("first drill at x=%v, want %v", x, left)
	}
	if x := rto[1].num(t, "cx"); x != (left+right)/2 {
		t.Errorf("second drill at x=%v, want %v", x, (left+right)/2)
	}
	// 10m of 1h is a sixth of the height; 20m a third.
	h := bottom - top
	for i, want := range []float64{bottom - h/6, bottom - h/3} {
		if y := rto[i].num(t, "cy"); y < want-0.1 || y > want+0.1 {
			t.Errorf("RTO point %d at y=%v, want %.1f", i, y, want)
		}
	}
	if !strings.Contains(rto[1].Children[0].Text, "Drill #2") || !strings.Contains(rto[1].Children[0].Text, "RTO 20m") {
		t.Errorf("tooltip %q", rto[1].Children[0].Text)
	}
	if rpo := svg.find("rect", "point rpo"); len(rpo) != 3 { // two and the legend's
		t.Errorf("%d RPO marks, want 3", len(rpo))
	}
	// The failed drill measured nothing: a cross on the axis at the right.
	failed := svg.find("path", "point failed")
	if len(failed) != 2 || !strings.HasPrefix(failed[0].attr("d"), "M"+strconv.FormatFloat(right-4, 'f', 1, 64)+" ") {
		t.Fatalf("failed marks %+v", failed)
	}
	if !strings.Contains(failed[0].Children[0].Text, "pg_restore <exit 1>") {
		t.Errorf("failed tooltip %q", failed[0].Children[0].Text)
	}
	// The objectives are dashed lines at their height.
	obj := svg.find("g", "objective rto")
	if len(obj) != 1 {
		t.Fatalf("%d RTO objective lines", len(obj))
	}
	line := obj[0].find("line", "")[0]
	if y, want := line.num(t, "y1"), a.y(30*time.Minute); y < want-0.1 || y > want+0.1 {
		t.Errorf("RTO objective at y=%v, want %.1f", y, want)
	}
	if len(svg.find("g", "objective rpo")) != 1 {
		t.Error("no RPO objective line")
	}
	// Accessible name and description; the service name is escaped.
	var title, desc string
	for _, c := range svg.Children {
		switch c.XMLName.Local {
		case "title":
			title = c.Text
		case "desc":
			desc = c.Text
		}
	}
	if title != `Restore drills of shop "<x>": RTO and RPO over time` || !strings.Contains(desc, "3 drills from 2026-10-01 to 2026-10-21; 2 measured, 1 not passed.") {
		t.Errorf("title %q desc %q", title, desc)
	}
	if svg.attr("role") != "img" || svg.attr("aria-labelledby") == "" {
		t.Errorf("svg attrs %v", svg.Attrs)
	}
}

func TestDrillChartSinglePoint(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	svg := parseSVG(t, string(drillChart("shop", []drillPoint{{ID: 7, At: at, State: "passed", RTO: dur(90 * time.Second)}}, 0, 0)))
	c := svg.find("circle", "point rto")[0]
	if x, want := c.num(t, "cx"), chartLeft+(chartW-chartLeft-chartRight)/2; x != want {
		t.Errorf("single drill at x=%v, want the middle %v", x, want)
	}
	// 90s +10% is 99s: the axis is 2m; no objectives drawn.
	if y, want := c.num(t, "cy"), chartH-chartBottom-(chartH-chartTop-chartBottom)*0.75; y < want-0.1 || y > want+0.1 {
		t.Errorf("y=%v want %.1f", y, want)
	}
	if len(svg.find("g", "objective")) != 0 {
		t.Error("objective lines drawn without objectives")
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	if got := string(sparkline("c", nil)); !strings.Contains(got, "no runs yet") {
		t.Fatalf("empty sparkline %q", got)
	}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	runs := []sparkRun{{at, "pass", 0}, {at.Add(time.Hour), "fail", 3}, {at.Add(2 * time.Hour), "warn", 1}, {at.Add(3 * time.Hour), "error", 0}}
	svg := parseSVG(t, string(sparkline("orders <fk>", runs)))
	bars := svg.find("rect", "bar")
	if len(bars) != 4 {
		t.Fatalf("%d bars", len(bars))
	}
	for i, want := range []struct {
		class string
		h     float64
	}{{"pass", sparkH / 3}, {"fail", sparkH}, {"warn", sparkH * 2 / 3}, {"error", sparkH}} {
		if !hasClasses(bars[i].attr("class"), want.class) {
			t.Errorf("bar %d class %q, want %s", i, bars[i].attr("class"), want.class)
		}
		if h := bars[i].num(t, "height"); h < want.h-0.1 || h > want.h+0.1 {
			t.Errorf("bar %d height %v, want %.1f", i, h, want.h)
		}
		if x := bars[i].num(t, "x"); x != float64(i)*(sparkBarW+sparkGap) {
			t.Errorf("bar %d at x=%v", i, x)
		}
	}
	if svg.Children[0].Text != "orders <fk>: last 4 runs, 3 not passing" {
		t.Errorf("title %q", svg.Children[0].Text)
	}
}

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]time.Duration{
		0: time.Second, 900 * time.Millisecond: time.Second, 99 * time.Second: 2 * time.Minute,
		3960 * time.Second: 2 * time.Hour, 33 * time.Minute: time.Hour, 10 * time.Second: 10 * time.Second,
		25 * time.Hour: 48 * time.Hour,
	} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 2500 * time.Second: "41m40s", time.Hour: "1h", 65 * time.Minute: "1h5m",
		30 * time.Minute: "30m", 1500 * time.Millisecond: "2s",
	} {
		if got := shortDuration(in); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", in, got, want)
		}
	}
}
