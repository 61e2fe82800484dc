package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ReadinessControlIDs are the IDs of the readiness controls, in catalog
// order. The readiness package owns the catalog; this copy lets the loader
// validate waivers and weights without importing it (a test in
// internal/readiness keeps the two equal).
var ReadinessControlIDs = []string{
	"backups", "restore-drill", "drill-rotation", "integrity", "data-changes", "standing-privilege", "grants",
	"break-glass", "emergency-kit", "probes-slo", "alert-channels", "audit-log", "contacts", "approval-policy",
}

// Readiness configures the readiness scorecard (steward score).
type Readiness struct {
	Schedule    string                         `yaml:"schedule" default:"@hourly" doc:"When the server evaluates the scorecard and stores it as history (River job readiness.score): a 5-field cron expression or a descriptor such as @hourly or @every 30m."`
	Weights     map[string]int                 `yaml:"weights" doc:"Control ID -> weight in a service's score, overriding the catalog's default (see docs/readiness.md); 0 leaves the control out of the score (it is still evaluated and listed)."`
	TierWeights map[string]int                 `yaml:"tier_weights" doc:"Tier (\"1\" to \"4\") -> weight of that tier's services in the overall score. Defaults: 1: 4, 2: 3, 3: 2, 4: 1."`
	Tiers       map[string]ReadinessThresholds `yaml:"tiers" doc:"Tier (\"1\" to \"4\") -> thresholds overriding the defaults for that tier's services; unset fields keep the default."`
	PolicyTests []string                       `yaml:"policy_tests" doc:"Policy test files (see steward policy test) that control approval-policy runs; a relative path is resolved against the main file's directory. Empty: the control fails until tests exist."`
	Waivers     []Waiver                       `yaml:"waivers" doc:"Exemptions of one service from one control, with a reason, an owner and an expiry. A valid waiver makes the control pass (marked waived); an expired one makes it fail. Waivers are audited."`
}

// ReadinessThresholds are the thresholds of the controls; durations are
// written like 24h or 30d. Empty (or 0) means the default for the tier.
type ReadinessThresholds struct {
	BackupMaxAge        string `yaml:"backup_max_age" doc:"Newest successful backup may be at most this old. Default: the service's objectives.rpo."`
	DrillMaxAge         string `yaml:"drill_max_age" doc:"A restore drill must have passed within this duration. Default: 30d for tier 1, 90d otherwise."`
	RTOTrendHorizon     string `yaml:"rto_trend_horizon" doc:"How far ahead the RTO trend of the last drills is projected; the projection must stay within objectives.rto. Default: 30d."`
	DrillRotationWindow string `yaml:"drill_rotation_window" doc:"Window in which drills must have been run by several people. Default: 180d."`
	DrillRotationPeople int    `yaml:"drill_rotation_people" minimum:"0" doc:"Distinct people who must have run a drill within drill_rotation_window. Default: 2."`
	CheckMaxAge         string `yaml:"check_max_age" doc:"Each integrity check must have run within this duration. Default: 24h."`
	CheckFailGrace      string `yaml:"check_fail_grace" doc:"A check of severity fail may be failing this long before the control fails (before that it warns). Default: 24h."`
	CheckWarnGrace      string `yaml:"check_warn_grace" doc:"A check of severity warn may be failing this long before the control fails. Default: 7d."`
	ChangePeriod        string `yaml:"change_period" doc:"Period whose data changes (fix.apply, fix.undo, sql.exec) control data-changes examines. Default: 30d."`
	ScanMaxAge          string `yaml:"scan_max_age" doc:"The latest standing-privilege scan of each database may be at most this old. Default: 7d."`
	KitDrillMaxAge      string `yaml:"kit_drill_max_age" doc:"The emergency kit must have been drilled (steward kit open --drill) within this duration. Default: 180d."`
	ProbeLocations      int    `yaml:"probe_locations" minimum:"0" doc:"Distinct locations the service's probes must report from. Default: 2."`
	ProbeMaxAge         string `yaml:"probe_max_age" doc:"A location counts when a probe reported from it within this duration. Default: 24h."`
	AlertMaxAge         string `yaml:"alert_max_age" doc:"Each channel the service's alerts route to must have delivered a message (a steward notify test counts) within this duration. Default: 7d."`
	CheckpointMaxAge    string `yaml:"checkpoint_max_age" doc:"The newest signed audit checkpoint may be at most this old. Default: 24h."`
}

// Waiver exempts one service from one readiness control until it expires.
type Waiver struct {
	Service string `yaml:"service" required:"true" doc:"Service name."`
	Control string `yaml:"control" required:"true" doc:"Control ID, such as emergency-kit (see docs/readiness.md)."`
	Reason  string `yaml:"reason" required:"true" doc:"Why the control does not apply or cannot pass yet."`
	Owner   string `yaml:"owner" required:"true" doc:"Who is accountable for the waiver (a person or team)."`
	Expires string `yaml:"expires" required:"true" doc:"When the waiver ends: a date (2026-12-31, end of that day UTC) or an RFC 3339 time."`
}

// ExpiresAt parses Expires: a date means the end of that day, UTC.
func (w Waiver) ExpiresAt() (time.Time, error) {
	if t, err := time.Parse("2006-01-02", w.Expires); err == nil {
		return t.Add(24*time.Hour - time.Second).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, w.Expires)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid expires %q: want a date like 2026-12-31 or an RFC 3339 time like 2026-12-31T18:00:00Z", w.Expires)
	}
	return t.UTC(), nil
}

// readinessDurations lists the duration fields of ReadinessThresholds by key.
func (t ReadinessThresholds) durations() map[string]string {
	return map[string]string{
		"backup_max_age": t.BackupMaxAge, "drill_max_age": t.DrillMaxAge, "rto_trend_horizon": t.RTOTrendHorizon,
		"drill_rotation_window": t.DrillRotationWindow, "check_max_age": t.CheckMaxAge, "check_fail_grace": t.CheckFailGrace,
		"check_warn_grace": t.CheckWarnGrace, "change_period": t.ChangePeriod, "scan_max_age": t.ScanMaxAge,
		"kit_drill_max_age": t.KitDrillMaxAge, "probe_max_age": t.ProbeMaxAge, "alert_max_age": t.AlertMaxAge,
		"checkpoint_max_age": t.CheckpointMaxAge,
	}
}

// PolicyTestFiles returns the policy test files with relative paths
// resolved against the main file's directory.
func (r Readiness) PolicyTestFiles(mainPath string) []string {
	out := make([]string, 0, len(r.PolicyTests))
	for _, f := range r.PolicyTests {
		if !filepath.IsAbs(f) && mainPath != "" {
			f = filepath.Join(filepath.Dir(mainPath), f)
		}
		out = append(out, f)
	}
	return out
}

func (l *loader) validateReadiness(cfg *Config) {
	r := cfg.Readiness
	if _, err := cron.ParseStandard(r.Schedule); err != nil {
		l.errorf(l.at("readiness.schedule"), "invalid readiness schedule %s: %v; want a cron expression like \"0 * * * *\" or @hourly", quoteShort(r.Schedule), err)
	}
	for id, w := range r.Weights {
		p := l.at(fmt.Sprintf("readiness.weights[%q]", id))
		if !slices.Contains(ReadinessControlIDs, id) {
			l.errorf(p, "unknown readiness control %s%s", quoteShort(id), knownHint(id, ReadinessControlIDs, "controls"))
		}
		if w < 0 {
			l.errorf(p, "weight of %s must be 0 or more, got %d", id, w)
		}
	}
	tierKey := func(what, k string) {
		if n, err := strconv.Atoi(k); err != nil || n < 1 || n > 4 {
			l.errorf(l.at(fmt.Sprintf("readiness.%s[%q]", what, k)), "invalid tier %s in readiness.%s: want \"1\", \"2\", \"3\" or \"4\"", quoteShort(k), what)
		}
	}
	for k, w := range r.TierWeights {
		tierKey("tier_weights", k)
		if w < 0 {
			l.errorf(l.at(fmt.Sprintf("readiness.tier_weights[%q]", k)), "tier weight must be 0 or more, got %d", w)
		}
	}
	for k, t := range r.Tiers {
		tierKey("tiers", k)
		for key, v := range t.durations() {
			if v == "" {
				continue
			}
			if _, err := ParseDuration(v); err != nil {
				l.errorf(l.at(fmt.Sprintf("readiness.tiers[%q].%s", k, key)), "readiness.tiers[%q].%s: %v", k, key, err)
			}
		}
	}
	for i, f := range r.PolicyTests {
		if strings.TrimSpace(f) == "" {
			l.errorf(l.at(fmt.Sprintf("readiness.policy_tests[%d]", i)), "policy_tests entries must not be empty")
		}
	}
	var services []string
	for _, s := range cfg.Services {
		services = append(services, s.Name)
	}
	type key struct{ service, control string }
	first := map[key]int{}
	for i, w := range r.Waivers {
		p := fmt.Sprintf("readiness.waivers[%d]", i)
		if w.Service != "" && !slices.Contains(services, w.Service) {
			l.errorf(l.at(p+".service"), "waiver for unknown service %s%s", quoteShort(w.Service), knownHint(w.Service, services, "services"))
		}
		if w.Control != "" && !slices.Contains(ReadinessControlIDs, w.Control) {
			l.errorf(l.at(p+".control"), "waiver for unknown control %s%s", quoteShort(w.Control), knownHint(w.Control, ReadinessControlIDs, "controls"))
		}
		if w.Reason != "" && strings.TrimSpace(w.Reason) == "" {
			l.errorf(l.at(p+".reason"), "waiver reason must not be blank")
		}
		if w.Owner != "" && strings.TrimSpace(w.Owner) == "" {
			l.errorf(l.at(p+".owner"), "waiver owner must not be blank")
		}
		if w.Expires != "" {
			if _, err := w.ExpiresAt(); err != nil {
				l.errorf(l.at(p+".expires"), "%v", err)
			}
		}
		k := key{w.Service, w.Control}
		if j, dup := first[k]; dup && w.Service != "" && w.Control != "" {
			l.errorf(l.at(p+".control"), "duplicate waiver of %s for service %s (first at %s)", w.Control, w.Service, l.at(fmt.Sprintf("readiness.waivers[%d].control", j)))
		} else {
			first[k] = i
		}
	}
}
