package drill

import (
	"math"
	"strings"
	"testing"
	"time"
)

// passedRun is a passed drill of a backup of size bytes, taken at t, whose
// RTO was rto seconds, against an objective of obj seconds.
func passedRun(t time.Time, bytes int64, rto, obj float64) RunRecord {
	return RunRecord{State: StatusPassed, StartedAt: t, RTOSeconds: f64(rto),
		Report: &Report{Status: StatusPassed, BackupBytes: bytes, BackupTime: &t, Objectives: Objectives{RTOSeconds: f64(obj)}}}
}

func TestTrendProjectsMissDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// 10 GB growing 1 GB/week; 10 s overhead + 100 MB/s; objective 10 min.
	var runs []RunRecord
	for w := range 6 {
		at := now.Add(time.Duration(w-5) * 7 * 24 * time.Hour)
		size := int64(10e9 + float64(w)*1e9)
		runs = append(runs, passedRun(at, size, 10+float64(size)/100e6, 600))
	}
	p := Trend(runs, nil, now)
	if p.Runs != 6 || math.Abs(p.RestoreMBPerS-100) > 0.5 || math.Abs(p.OverheadSeconds-10) > 0.5 {
		t.Fatalf("fit: %+v", p)
	}
	if math.Abs(p.GrowthBytesPerDay-1e9/7) > 1e6 {
		t.Fatalf("growth %f, want %f", p.GrowthBytesPerDay, 1e9/7)
	}
	// Today 15 GB -> 160 s. 600 s at 59 GB -> 44 GB more at 1/7 GB a day = 308 days.
	want := now.Add(308 * 24 * time.Hour)
	if p.MissDate == nil || p.MissDate.Sub(want).Abs() > 48*time.Hour {
		t.Fatalf("miss date %v, want about %v (%s)", p.MissDate, want, p.Summary)
	}
	if !strings.Contains(p.Summary, "will be missed around") {
		t.Fatalf("summary %q", p.Summary)
	}
}

func TestTrendNotWithinAYear(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	runs := []RunRecord{
		passedRun(now.Add(-14*24*time.Hour), 1e9, 12, 1800),
		passedRun(now.Add(-7*24*time.Hour), 1.01e9, 12.1, 1800),
		passedRun(now, 1.02e9, 12.2, 1800),
		{State: StatusFailed, StartedAt: now, RTOSeconds: f64(5000)}, // ignored
	}
	p := Trend(runs, nil, now)
	if p.Runs != 3 || p.MissDate != nil || !strings.Contains(p.Summary, "not within 365 days") {
		t.Fatalf("projection %+v", p)
	}
	// Growth from the backup manifests overrides the runs' sizes.
	p = Trend(runs, []SizePoint{{now.Add(-24 * time.Hour), 1e9}, {now, 1e9}}, now)
	if p.GrowthBytesPerDay != 0 || !strings.Contains(p.Summary, "not growing") {
		t.Fatalf("flat growth: %+v", p)
	}
}

func TestTrendAlreadyMissedAndEmpty(t *testing.T) {
	t.Parallel()
	now := time.Now()
	p := Trend([]RunRecord{passedRun(now, 1e9, 100, 60)}, nil, now)
	if p.MissDate == nil || !strings.Contains(p.Summary, "already exceeds") {
		t.Fatalf("already missed: %+v", p)
	}
	if p := Trend(nil, nil, now); p.Runs != 0 || !strings.Contains(p.Summary, "no passed drill") {
		t.Fatalf("empty: %+v", p)
	}
}
