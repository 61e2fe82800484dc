package drill

import (
	"encoding/json"
	"time"

	"github.com/stewardhq/steward/internal/dbx"
)

// Statuses of a drill run (the drill_runs states).
const (
	StatusRunning = "running"
	StatusPassed  = "passed"
	StatusFailed  = "failed" // the drill ran and found a problem
	StatusError   = "error"  // the drill could not run to the end
)

// Sources of the RPO measurement, best first.
const (
	RPORestoredData      = "restored-data"      // the freshness query on the restored copy
	RPOManifestFreshness = "manifest-freshness" // the freshness value captured at backup time
	RPOSnapshotTime      = "snapshot-time"      // the backup's snapshot time
)

// Phase names Steward itself times; fetch and restore phases come from the
// backup and engine packages (fetch, verify checksum, decrypt, restore
// data, build indexes, …).
const (
	PhasePick      = "pick backup"
	PhaseProvision = "provision"
	PhaseFetch     = "fetch"
	PhaseRestore   = "restore"
	PhaseVerify    = "verify"
	PhaseTeardown  = "teardown"
)

// Report is what a drill did and measured; it is stored as JSON in
// drill_runs and printed by `steward drill run --output json`.
type Report struct {
	RunID         int64             `json:"run_id"`
	Mode          string            `json:"mode"` // drill or restore
	Service       string            `json:"service"`
	Drill         string            `json:"drill"`
	Database      string            `json:"database"`
	Engine        string            `json:"engine"`
	Status        string            `json:"status"`
	BackupID      string            `json:"backup_id"`
	BackupRef     string            `json:"backup_ref,omitempty"`
	BackupTime    *time.Time        `json:"backup_time,omitempty"`
	BackupBytes   int64             `json:"backup_bytes"`
	Repository    string            `json:"repository,omitempty"`
	Encrypted     bool              `json:"encrypted"`
	RTOSeconds    *float64          `json:"rto_seconds"`
	RPOSeconds    *float64          `json:"rpo_seconds"`
	RPOSource     string            `json:"rpo_source"`
	Freshness     string            `json:"freshness,omitempty"` // the newest data point RPO was measured from
	Objectives    Objectives        `json:"objectives"`
	Phases        []Phase           `json:"phases"`
	Verifications []Verification    `json:"verifications"`
	Scratch       string            `json:"scratch"`
	ScratchLabel  string            `json:"scratch_label,omitempty"`
	Error         string            `json:"error"`
	StartedAt     time.Time         `json:"started_at"`
	FinishedAt    *time.Time        `json:"finished_at,omitempty"`
	Actor         string            `json:"actor"`
	Commands      []string          `json:"commands"`
	BackupCmds    []string          `json:"backup_commands,omitempty"`
	ToolVersions  map[string]string `json:"tool_versions"`
	// NextSteps say what is left to do by hand: a data directory restored
	// from pgBackRest is not started.
	NextSteps []string `json:"next_steps,omitempty"`
}

// Objectives are the service's recovery objectives in seconds; null when
// the service has none.
type Objectives struct {
	RTOSeconds *float64 `json:"rto_seconds"`
	RPOSeconds *float64 `json:"rpo_seconds"`
}

// Phase is one timed step.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`
	MBPerS  float64 `json:"mb_per_s"`
	Error   string  `json:"error,omitempty"`
}

// Verification is one check of the restored data.
type Verification struct {
	Name   string `json:"name"`
	Status string `json:"status"` // passed, failed, error, skipped; warning for a warn-severity integrity check
	Detail string `json:"detail"`
	SQL    string `json:"sql,omitempty"`
	Expect string `json:"expect,omitempty"`
	// Check (SERVICE/CHECK) and Severity are set for the service's
	// integrity checks run against the restored copy.
	Check    string `json:"check,omitempty"`
	Severity string `json:"severity,omitempty"`
}

func newPhase(name string, d time.Duration, bytes int64) Phase {
	p := Phase{Name: name, Seconds: round3(d.Seconds()), Bytes: bytes}
	if bytes > 0 && d > 0 {
		p.MBPerS = round3(float64(bytes) / 1e6 / d.Seconds())
	}
	return p
}

func phaseFrom(p dbx.Phase) Phase { return newPhase(p.Name, p.Duration, p.Bytes) }

func round3(f float64) float64 {
	if f < 0 {
		return -round3(-f)
	}
	return float64(int64(f*1000+0.5)) / 1000
}

func secondsPtr(d time.Duration) *float64 {
	s := round3(d.Seconds())
	return &s
}

// PhaseSeconds sums the seconds of the phases named name (0 when absent).
func (r *Report) PhaseSeconds(names ...string) float64 {
	var s float64
	for _, p := range r.Phases {
		for _, n := range names {
			if p.Name == n {
				s += p.Seconds
			}
		}
	}
	return s
}

// ParseReport decodes a stored report.
func ParseReport(raw string) (*Report, error) {
	var r Report
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, err
	}
	return &r, nil
}
