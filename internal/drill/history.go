package drill

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// RunRecord is one recorded drill with its report.
type RunRecord struct {
	ID         int64      `json:"id"`
	Service    string     `json:"service"`
	Drill      string     `json:"drill"`
	State      string     `json:"state"`
	Actor      string     `json:"actor"`
	BackupID   string     `json:"backup_id"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	RTOSeconds *float64   `json:"rto_seconds"`
	RPOSeconds *float64   `json:"rpo_seconds"`
	RPOSource  string     `json:"rpo_source"`
	Error      string     `json:"error,omitempty"`
	Report     *Report    `json:"report,omitempty"`
}

// History returns the newest limit runs of service/drill, newest first.
func History(ctx context.Context, st *store.Store, service, drillName string, limit int) ([]RunRecord, error) {
	rows, err := st.ListDrillRuns(ctx, store.DrillRunFilter{Service: service, Drill: drillName, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]RunRecord, 0, len(rows))
	for _, row := range rows {
		run := RunRecord{ID: row.ID, Service: row.Service, Drill: row.Drill, State: row.State, Actor: row.Actor, BackupID: row.BackupID,
			StartedAt: row.StartedAt, FinishedAt: row.FinishedAt, RTOSeconds: row.RTOSeconds, RPOSeconds: row.RPOSeconds,
			RPOSource: row.RPOSource, Error: row.Error}
		if rep, err := ParseReport(row.Report); err == nil && rep.Status != "" {
			run.Report = rep
		}
		out = append(out, run)
	}
	return out, nil
}

// LastPassed returns the newest passed run with a report, or nil.
func LastPassed(runs []RunRecord) *RunRecord {
	for i := range runs {
		if runs[i].State == StatusPassed && runs[i].Report != nil {
			return &runs[i]
		}
	}
	return nil
}

// SizePoint is the size of one backup at its time (from manifests).
type SizePoint struct {
	Time  time.Time `json:"time"`
	Bytes int64     `json:"bytes"`
}

// Projection is when the RTO objective will be missed at the current
// growth and restore throughput.
type Projection struct {
	Runs int `json:"runs"` // passed runs used
	// RestoreMBPerS is the fitted restore throughput (backup bytes per
	// second of RTO beyond the fixed overhead).
	RestoreMBPerS float64 `json:"restore_mb_per_s"`
	// OverheadSeconds is the part of the RTO that does not grow with size.
	OverheadSeconds float64 `json:"overhead_seconds"`
	// GrowthBytesPerDay is the fitted backup size growth.
	GrowthBytesPerDay float64 `json:"growth_bytes_per_day"`
	// CurrentRTOSeconds is the RTO the model predicts for today's size.
	CurrentRTOSeconds   float64  `json:"current_rto_seconds"`
	ObjectiveRTOSeconds *float64 `json:"objective_rto_seconds"`
	// MissDate is when the projected RTO exceeds the objective; nil when
	// not within Horizon (or no objective).
	MissDate *time.Time `json:"miss_date,omitempty"`
	// Summary says it in one sentence.
	Summary string `json:"summary"`
}

// Horizon is how far ahead Trend projects.
const Horizon = 365 * 24 * time.Hour

// Trend fits, by least squares over the passed runs, RTO against backup
// size (the slope is the inverse of the restore throughput, the intercept
// the fixed overhead) and backup size against time (growth; from growth,
// the backup manifests, when given, else from the runs), and projects the
// date the RTO will exceed the objective. now is the projection's start.
func Trend(history []RunRecord, growth []SizePoint, now time.Time) Projection {
	var p Projection
	var xs, ys []float64 // size (bytes), RTO (s)
	var sizes []SizePoint
	for _, r := range history {
		if r.State != StatusPassed || r.RTOSeconds == nil || r.Report == nil || r.Report.BackupBytes <= 0 {
			continue
		}
		if p.ObjectiveRTOSeconds == nil {
			p.ObjectiveRTOSeconds = r.Report.Objectives.RTOSeconds
		}
		xs = append(xs, float64(r.Report.BackupBytes))
		ys = append(ys, *r.RTOSeconds)
		t := r.StartedAt
		if r.Report.BackupTime != nil {
			t = *r.Report.BackupTime
		}
		sizes = append(sizes, SizePoint{Time: t, Bytes: r.Report.BackupBytes})
	}
	p.Runs = len(xs)
	if p.Runs == 0 {
		p.Summary = "no passed drill yet: nothing to project from"
		return p
	}
	// RTO = overhead + bytes × secondsPerByte.
	overhead, perByte, ok := leastSquares(xs, ys)
	if !ok || perByte <= 0 || overhead < 0 {
		// Sizes too alike to separate overhead from throughput: attribute
		// the whole RTO to size (conservative), using the median ratio.
		ratios := make([]float64, len(xs))
		for i := range xs {
			ratios[i] = ys[i] / xs[i]
		}
		sort.Float64s(ratios)
		overhead, perByte = 0, ratios[len(ratios)/2]
	}
	p.OverheadSeconds = round3(overhead)
	p.RestoreMBPerS = round3(1 / perByte / 1e6)
	if len(growth) > 0 {
		sizes = growth
	}
	var ts, bs []float64
	t0 := now
	for _, s := range sizes {
		ts = append(ts, s.Time.Sub(t0).Hours()/24)
		bs = append(bs, float64(s.Bytes))
	}
	base, perDay, ok := leastSquares(ts, bs)
	if !ok {
		// One size only: no growth known.
		base, perDay = mean(bs), 0
	}
	p.GrowthBytesPerDay = round3(perDay)
	p.CurrentRTOSeconds = round3(overhead + base*perByte)
	if p.ObjectiveRTOSeconds == nil {
		p.Summary = fmt.Sprintf("RTO about %s today at %.1f MB/s; the service has no RTO objective to project against", fmtSeconds(p.CurrentRTOSeconds), p.RestoreMBPerS)
		return p
	}
	obj := *p.ObjectiveRTOSeconds
	if p.CurrentRTOSeconds > obj {
		d := now
		p.MissDate = &d
		p.Summary = fmt.Sprintf("RTO about %s today already exceeds the objective %s", fmtSeconds(p.CurrentRTOSeconds), fmtSeconds(obj))
		return p
	}
	if perDay <= 0 {
		p.Summary = fmt.Sprintf("RTO about %s vs objective %s; backups are not growing: not within 365 days", fmtSeconds(p.CurrentRTOSeconds), fmtSeconds(obj))
		return p
	}
	// overhead + (base + perDay·days)·perByte = obj
	days := ((obj-overhead)/perByte - base) / perDay
	if days > Horizon.Hours()/24 || math.IsNaN(days) {
		p.Summary = fmt.Sprintf("RTO about %s vs objective %s, growing %s/day: not within 365 days", fmtSeconds(p.CurrentRTOSeconds), fmtSeconds(obj), humanBytes(int64(perDay)))
		return p
	}
	d := now.Add(time.Duration(days * 24 * float64(time.Hour))).UTC().Truncate(24 * time.Hour)
	p.MissDate = &d
	p.Summary = fmt.Sprintf("RTO about %s vs objective %s, growing %s/day at %.1f MB/s: the objective will be missed around %s", fmtSeconds(p.CurrentRTOSeconds), fmtSeconds(obj), humanBytes(int64(perDay)), p.RestoreMBPerS, d.Format("2006-01-02"))
	return p
}

// leastSquares fits y = a + b·x; ok is false when x does not vary.
func leastSquares(xs, ys []float64) (a, b float64, ok bool) {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0, 0, false
	}
	mx, my := mean(xs), mean(ys)
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx <= 1e-12*n*math.Max(1, mx*mx) {
		return 0, 0, false
	}
	b = sxy / sxx
	return my - b*mx, b, true
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
