package readiness

import (
	"strconv"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

const day = 24 * time.Hour

// Thresholds are the limits the controls apply to one service; they depend
// on its tier and on readiness.tiers in the config.
type Thresholds struct {
	BackupMaxAge        time.Duration `json:"backup_max_age"` // 0: the service's RPO objective
	DrillMaxAge         time.Duration `json:"drill_max_age"`
	RTOTrendHorizon     time.Duration `json:"rto_trend_horizon"`
	DrillRotationWindow time.Duration `json:"drill_rotation_window"`
	DrillRotationPeople int           `json:"drill_rotation_people"`
	CheckMaxAge         time.Duration `json:"check_max_age"`
	CheckFailGrace      time.Duration `json:"check_fail_grace"`
	CheckWarnGrace      time.Duration `json:"check_warn_grace"`
	ChangePeriod        time.Duration `json:"change_period"`
	ScanMaxAge          time.Duration `json:"scan_max_age"`
	KitDrillMaxAge      time.Duration `json:"kit_drill_max_age"`
	ProbeLocations      int           `json:"probe_locations"`
	ProbeMaxAge         time.Duration `json:"probe_max_age"`
	AlertMaxAge         time.Duration `json:"alert_max_age"`
	CheckpointMaxAge    time.Duration `json:"checkpoint_max_age"`
}

// DefaultThresholds are the built-in thresholds of a tier: a restore drill
// within 30 days for tier 1 and 90 days otherwise; the rest is the same for
// every tier.
func DefaultThresholds(tier int) Thresholds {
	t := Thresholds{
		DrillMaxAge:         90 * day,
		RTOTrendHorizon:     30 * day,
		DrillRotationWindow: 180 * day,
		DrillRotationPeople: 2,
		CheckMaxAge:         24 * time.Hour,
		CheckFailGrace:      24 * time.Hour,
		CheckWarnGrace:      7 * day,
		ChangePeriod:        30 * day,
		ScanMaxAge:          7 * day,
		KitDrillMaxAge:      180 * day,
		ProbeLocations:      2,
		ProbeMaxAge:         24 * time.Hour,
		AlertMaxAge:         7 * day,
		CheckpointMaxAge:    24 * time.Hour,
	}
	if tier == 1 {
		t.DrillMaxAge = 30 * day
	}
	return t
}

// ThresholdsFor applies the config's overrides for tier to the defaults.
// The loader has validated the durations; one that does not parse keeps the
// default.
func ThresholdsFor(r config.Readiness, tier int) Thresholds {
	t := DefaultThresholds(tier)
	o, ok := r.Tiers[strconv.Itoa(tier)]
	if !ok {
		return t
	}
	set := func(dst *time.Duration, v string) {
		if v == "" {
			return
		}
		if d, err := config.ParseDuration(v); err == nil {
			*dst = d
		}
	}
	set(&t.BackupMaxAge, o.BackupMaxAge)
	set(&t.DrillMaxAge, o.DrillMaxAge)
	set(&t.RTOTrendHorizon, o.RTOTrendHorizon)
	set(&t.DrillRotationWindow, o.DrillRotationWindow)
	set(&t.CheckMaxAge, o.CheckMaxAge)
	set(&t.CheckFailGrace, o.CheckFailGrace)
	set(&t.CheckWarnGrace, o.CheckWarnGrace)
	set(&t.ChangePeriod, o.ChangePeriod)
	set(&t.ScanMaxAge, o.ScanMaxAge)
	set(&t.KitDrillMaxAge, o.KitDrillMaxAge)
	set(&t.ProbeMaxAge, o.ProbeMaxAge)
	set(&t.AlertMaxAge, o.AlertMaxAge)
	set(&t.CheckpointMaxAge, o.CheckpointMaxAge)
	if o.DrillRotationPeople > 0 {
		t.DrillRotationPeople = o.DrillRotationPeople
	}
	if o.ProbeLocations > 0 {
		t.ProbeLocations = o.ProbeLocations
	}
	return t
}
