package readiness

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// Status is the outcome of one control for one service.
type Status string

// The statuses a control can have. Unknown means the evidence needed to
// decide is missing (the capability is not configured or not available); it
// is listed but excluded from the score's denominator, never a silent pass.
const (
	Pass    Status = "pass"
	Warn    Status = "warn"
	Fail    Status = "fail"
	Unknown Status = "unknown"
)

// Ref is a clause of a compliance framework a control maps to.
type Ref struct {
	Framework string `json:"framework"` // "ISO/IEC 27001:2022", "SOC 2", "PCI DSS 4.0"
	Clause    string `json:"clause"`    // "A.8.13", "A1.2", "10.3"
}

// Frameworks referenced by the catalog.
const (
	ISO27001 = "ISO/IEC 27001:2022"
	SOC2     = "SOC 2"
	PCIDSS   = "PCI DSS 4.0"
)

// Control describes one control of the catalog.
type Control struct {
	ID     string  `json:"id"`     // stable slug, e.g. "backups"
	Number int     `json:"number"` // 1..14 as in the catalog
	Title  string  `json:"title"`
	Refs   []Ref   `json:"refs"`
	Weight float64 `json:"weight"` // default weight, see docs/readiness.md
}

// Evidence is one item that supports a result.
type Evidence struct {
	Kind      string    `json:"kind"` // backup, drill, check, fix, sql, grant, scan, review, kit-drill, probe, slo, notify, checkpoint, waiver, policy-test, audit
	ID        string    `json:"id"`   // the record's id in its table ("" when none)
	At        time.Time `json:"at"`
	Summary   string    `json:"summary"` // one line with numbers
	Actor     string    `json:"actor,omitempty"`
	AuditSeq  int64     `json:"audit_seq,omitempty"`  // the audit event that records it (0: none)
	AuditHash string    `json:"audit_hash,omitempty"` // hex hash of that event
	Link      string    `json:"link,omitempty"`       // UI path, e.g. /drills/42 or /audit?seq=17
}

// Waiver exempts a service from a control until it expires.
type Waiver struct {
	Control string    `json:"control"`
	Reason  string    `json:"reason"`
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// Result is one control evaluated for one service.
type Result struct {
	Control  Control    `json:"control"`
	Status   Status     `json:"status"` // after waivers: a valid waiver makes it Pass with Waived set; an expired one Fail
	Reason   string     `json:"reason"` // one line with numbers
	Fix      string     `json:"fix"`    // how to make it pass ("" when passing)
	Evidence []Evidence `json:"evidence"`
	Waiver   *Waiver    `json:"waiver,omitempty"`
	Waived   bool       `json:"waived"`
}

// ServiceCard is the scorecard of one service.
type ServiceCard struct {
	Service  string   `json:"service"`
	Tier     int      `json:"tier"`
	Score    float64  `json:"score"`              // 0..100
	Previous *float64 `json:"previous,omitempty"` // score ~30 days ago, from history
	Results  []Result `json:"results"`            // catalog order
}

// Scorecard is every service's card at one instant.
type Scorecard struct {
	EvaluatedAt time.Time     `json:"evaluated_at"`
	Score       float64       `json:"score"` // overall, weighted by tier
	Previous    *float64      `json:"previous,omitempty"`
	Services    []ServiceCard `json:"services"`
}

// Control IDs, stable: they appear in config (waivers, weights), in stored
// history and in reports.
const (
	CtlBackups           = "backups"
	CtlRestoreDrill      = "restore-drill"
	CtlDrillRotation     = "drill-rotation"
	CtlIntegrity         = "integrity"
	CtlDataChanges       = "data-changes"
	CtlStandingPrivilege = "standing-privilege"
	CtlGrants            = "grants"
	CtlBreakGlass        = "break-glass"
	CtlEmergencyKit      = "emergency-kit"
	CtlProbesSLO         = "probes-slo"
	CtlAlertChannels     = "alert-channels"
	CtlAuditLog          = "audit-log"
	CtlContacts          = "contacts"
	CtlApprovalPolicy    = "approval-policy"
)

func iso(c string) Ref  { return Ref{Framework: ISO27001, Clause: c} }
func soc2(c string) Ref { return Ref{Framework: SOC2, Clause: c} }
func pci(c string) Ref  { return Ref{Framework: PCIDSS, Clause: c} }

// catalog is the control table in number order. To add a control, append it
// here and register its evaluation function in checks (see docs/readiness.md,
// "Adding a control").
var catalog = []Control{
	{ID: CtlBackups, Number: 1, Title: "Backups are younger than the RPO objective", Weight: 3,
		Refs: []Ref{iso("A.8.13"), soc2("A1.2")}},
	{ID: CtlRestoreDrill, Number: 2, Title: "Restore drill passed recently, within RTO/RPO, and the RTO trend holds", Weight: 3,
		Refs: []Ref{iso("A.8.13"), iso("A.5.30"), soc2("A1.3")}},
	{ID: CtlDrillRotation, Number: 3, Title: "Drills are run by more than one person", Weight: 1,
		Refs: []Ref{iso("A.5.30"), iso("A.6.3"), soc2("A1.3")}},
	{ID: CtlIntegrity, Number: 4, Title: "Integrity checks cover every database, run daily, no stale failures", Weight: 2,
		Refs: []Ref{iso("A.8.16"), soc2("PI1.5")}},
	{ID: CtlDataChanges, Number: 5, Title: "Data changes go through a fix or guarded SQL with approvals", Weight: 2,
		Refs: []Ref{iso("A.8.32"), soc2("CC8.1"), pci("6.5.1")}},
	{ID: CtlStandingPrivilege, Number: 6, Title: "No standing privilege outside the allow-list", Weight: 2,
		Refs: []Ref{iso("A.8.2"), soc2("CC6.3"), pci("7.2.4")}},
	{ID: CtlGrants, Number: 7, Title: "Grants expire and are revoked with proof", Weight: 2,
		Refs: []Ref{iso("A.8.2"), iso("A.5.18"), soc2("CC6.2"), pci("7.2.2")}},
	{ID: CtlBreakGlass, Number: 8, Title: "Every break-glass use is reviewed within its deadline", Weight: 2,
		Refs: []Ref{iso("A.8.2"), iso("A.8.15"), soc2("CC6.3"), pci("10.2.1.2")}},
	{ID: CtlEmergencyKit, Number: 9, Title: "Emergency kit exists and was drilled within 180 days", Weight: 1,
		Refs: []Ref{iso("A.5.29"), iso("A.5.30"), soc2("CC7.5")}},
	{ID: CtlProbesSLO, Number: 10, Title: "Probes from two locations, an SLO defined, budget not exhausted", Weight: 2,
		Refs: []Ref{iso("A.8.16"), soc2("A1.1"), soc2("CC7.2")}},
	{ID: CtlAlertChannels, Number: 11, Title: "Alert channels delivered successfully within 7 days", Weight: 1,
		Refs: []Ref{iso("A.8.16"), iso("A.6.8"), soc2("CC7.3")}},
	{ID: CtlAuditLog, Number: 12, Title: "Audit log verifies and a signed checkpoint is recent", Weight: 2,
		Refs: []Ref{iso("A.8.15"), soc2("CC7.2"), pci("10.3")}},
	{ID: CtlContacts, Number: 13, Title: "Contacts on file: on-call, escalation, provider NOC/SIRT", Weight: 1,
		Refs: []Ref{iso("A.5.24"), iso("A.5.26"), soc2("CC2.3"), pci("12.10.1")}},
	{ID: CtlApprovalPolicy, Number: 14, Title: "Approval policy covers deploys and data changes; policy tests pass", Weight: 2,
		Refs: []Ref{iso("A.8.32"), soc2("CC8.1"), pci("6.5.1")}},
}

// Catalog returns every control in number order. The slice is a copy.
func Catalog() []Control {
	out := make([]Control, len(catalog))
	for i, c := range catalog {
		c.Refs = append([]Ref(nil), c.Refs...)
		out[i] = c
	}
	return out
}

// Lookup returns the control with the given ID.
func Lookup(id string) (Control, bool) {
	for _, c := range Catalog() {
		if c.ID == id {
			return c, true
		}
	}
	return Control{}, false
}

// IDs returns the IDs of every control in number order.
func IDs() []string {
	out := make([]string, len(catalog))
	for i, c := range catalog {
		out[i] = c.ID
	}
	return out
}

// Evaluator computes scorecards from the store, the config and the audit log.
// Store and Config are required; the rest is optional.
type Evaluator struct {
	Store *store.Store
	// Config returns the current config (it follows reloads).
	Config func() *config.Config
	// Audit appends the readiness.waiver.* events; nil: waivers are not
	// audited (read-only evaluation, e.g. an auditor's report).
	Audit *audit.Log
	// SLO supplies the SLO state of control 10; nil: that part of the
	// control is unknown ("SLO evaluation not available").
	SLO SLOSource
	// Verifier checks checkpoint signatures for control 12; nil: a stored
	// checkpoint counts by its time, its signature is not re-checked.
	Verifier note.Verifier
	Logger   *slog.Logger
	// Now is the evaluation time; time.Now by default.
	Now func() time.Time
	// VerifyTTL is how long a verification of the whole audit log is
	// reused by later evaluations (pages evaluate often; the log can be
	// large). 0: DefaultVerifyTTL; negative: verify at every evaluation.
	VerifyTTL time.Duration

	waiverMu sync.Mutex // serializes the waiver audit check-then-append
	verifyMu sync.Mutex
	verified *verifiedLog // the last verification, for VerifyTTL
}

// SLOSummary is the state of one SLO of a service, as control 10 needs it.
type SLOSummary struct {
	Probe           string  `json:"probe"`            // probe name, "" for a service-level SLO
	Kind            string  `json:"kind,omitempty"`   // availability or latency
	Checks          int     `json:"checks,omitempty"` // checks counted over the window
	Objective       float64 `json:"objective"`        // target, e.g. 0.999
	Window          string  `json:"window"`           // e.g. "30d"
	Availability    float64 `json:"availability"`     // measured over the window, 0..1
	BudgetRemaining float64 `json:"budget_remaining"` // fraction of the error budget left, <= 0 when exhausted
}

// SLOSource supplies the SLOs defined for a service and their state. The
// SLO evaluator (internal/probe) implements it through an adapter wired in
// cmd/steward.
type SLOSource interface {
	ServiceSLOs(ctx context.Context, service string) ([]SLOSummary, error)
}

// Evaluate evaluates every control for one service ("" = all services) at
// the evaluator's current time.
func (e *Evaluator) Evaluate(ctx context.Context, service string) (*Scorecard, error) {
	return e.evaluate(ctx, service)
}
