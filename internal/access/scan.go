package access

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Scan statuses, as stored in access_scans.status.
const (
	ScanOK       = "ok"       // every login is allowed, a live grant or connect-only
	ScanFindings = "findings" // some login holds privileges nobody allowed
	ScanError    = "error"    // the database could not be scanned
	ScanSkipped  = "skipped"  // nothing to scan (SQLite has no logins)
)

// Classes of a principal.
const (
	ClassAllowed     = "allowed"      // in the database's standing_access
	ClassGrant       = "grant"        // a live Steward grant
	ClassFinding     = "finding"      // standing privileges nobody allowed
	ClassConnectOnly = "connect-only" // can log in, can do nothing that matters
)

// Severities of a standing privilege, lowest first.
const (
	SeverityMedium   = "medium"   // read-only
	SeverityHigh     = "high"     // DML, DDL, ownership, role creation, grant option
	SeverityCritical = "critical" // superuser, SUPER, ALL PRIVILEGES ON *.*
)

// Events the scan alerts with.
const (
	EventFinding         = "access.finding"
	EventFindingResolved = "access.finding.resolved"
	EventScanError       = "access.scan.error"
)

// ScanActor is the actor recorded for scheduled scans.
const ScanActor = "steward:schedule"

// ScanDeps are what a scan uses. Store is required; Audit and Notifier may
// be nil (then nothing is audited or alerted).
type ScanDeps struct {
	Store    *store.Store
	Audit    auth.AuditFunc
	Notifier Notifier
	Logger   *slog.Logger
	Now      func() time.Time
}

func (d ScanDeps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d ScanDeps) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Principal is a role or user that can log in to a database, with what it
// can do there and how the scan classified it.
type Principal struct {
	// Name is the PostgreSQL role, or user@host for MySQL/MariaDB.
	Name string `json:"name"`
	// User and Host are the MySQL/MariaDB account parts.
	User string `json:"user,omitempty"`
	Host string `json:"host,omitempty"`
	// Attributes are role attributes and global powers: SUPERUSER,
	// CREATEROLE, CREATEDB, BYPASSRLS, REPLICATION.
	Attributes []string `json:"attributes,omitempty"`
	// MemberOf lists the roles it is a member of, transitively.
	MemberOf []string `json:"member_of,omitempty"`
	// ValidUntil is PostgreSQL's password expiry (rolvaliduntil).
	ValidUntil      *time.Time  `json:"valid_until,omitempty"`
	PasswordExpired bool        `json:"password_expired,omitempty"`
	Privileges      []Privilege `json:"privileges,omitempty"`
	// Owns lists the objects it owns: "database shop", "table public.orders".
	Owns []string `json:"owns,omitempty"`
	// Class is allowed, grant, finding or connect-only.
	Class string `json:"class"`
	// Severity is the worst of Reasons; empty for connect-only.
	Severity string   `json:"severity,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`

	risks []scanRisk
}

// Privilege is what a principal holds on one object, directly or through a
// role it is a member of (Via).
type Privilege struct {
	// On names the object: "database shop", "schema public",
	// "table public.orders", MySQL "*.*", "shop.*", "shop.orders".
	On         string   `json:"on"`
	Privileges []string `json:"privileges"`
	Grantable  bool     `json:"grantable,omitempty"`
	Via        string   `json:"via,omitempty"`
}

// Finding is a principal holding standing privileges that are neither
// allow-listed nor a live grant.
type Finding struct {
	Principal string   `json:"principal"`
	Severity  string   `json:"severity"`
	Reasons   []string `json:"reasons"`
}

// ScanReport is the scan of one database.
type ScanReport struct {
	ScanID     int64       `json:"scan_id,omitempty"`
	Service    string      `json:"service"`
	Database   string      `json:"database"`
	Engine     string      `json:"engine"`
	Status     string      `json:"status"`
	Note       string      `json:"note,omitempty"`
	Error      string      `json:"error,omitempty"`
	Principals []Principal `json:"principals"`
	Findings   []Finding   `json:"findings"`
	// New and Resolved name the principals whose findings appeared or
	// disappeared since the previous scan of the database.
	New        []string  `json:"new,omitempty"`
	Resolved   []string  `json:"resolved,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
}

// scanRisk is one reason a principal matters, with its severity.
type scanRisk struct {
	severity string
	reason   string
}

func scanSeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 3
	case SeverityHigh:
		return 2
	case SeverityMedium:
		return 1
	}
	return 0
}

func (p *Principal) addRisk(severity, format string, args ...any) {
	p.risks = append(p.risks, scanRisk{severity, fmt.Sprintf(format, args...)})
}

// classify sets Class, Severity and Reasons from the risks found.
func (p *Principal) classify(allowed, grants []string) {
	slices.SortStableFunc(p.risks, func(a, b scanRisk) int { return scanSeverityRank(b.severity) - scanSeverityRank(a.severity) })
	p.Reasons, p.Severity = nil, ""
	for _, r := range p.risks {
		if !slices.Contains(p.Reasons, r.reason) {
			p.Reasons = append(p.Reasons, r.reason)
		}
		if scanSeverityRank(r.severity) > scanSeverityRank(p.Severity) {
			p.Severity = r.severity
		}
	}
	account := p.Name
	if p.User != "" {
		account = p.User
	}
	switch {
	case slices.Contains(allowed, p.Name) || slices.Contains(allowed, account):
		p.Class = ClassAllowed
	case slices.Contains(grants, account):
		p.Class = ClassGrant
	case len(p.risks) > 0:
		p.Class = ClassFinding
	default:
		p.Class = ClassConnectOnly
	}
}

// Scan scans every database of svc for logins with standing privileges,
// records one access_scans row and an access.scan audit event per
// database, alerts on findings that are new since the previous scan and
// resolves those that disappeared. A database that cannot be scanned has
// status error; the error returned is about recording, not about the
// databases.
func Scan(ctx context.Context, deps ScanDeps, svc *config.Service, actor string) ([]ScanReport, error) {
	if deps.Store == nil {
		return nil, errors.New("access scan: no store")
	}
	log := deps.log().With("service", svc.Name)
	var out []ScanReport
	for i := range svc.Databases {
		d := &svc.Databases[i]
		r := scanDatabase(ctx, deps, log, svc, d)
		if err := recordScan(ctx, deps, log, &r, actor); err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func scanDatabase(ctx context.Context, deps ScanDeps, log *slog.Logger, svc *config.Service, d *config.Database) ScanReport {
	start := deps.now()
	r := ScanReport{Service: svc.Name, Database: d.Name, Engine: d.Engine, StartedAt: start.UTC().Truncate(time.Microsecond),
		Principals: []Principal{}, Findings: []Finding{}}
	defer func() { r.DurationMS = deps.now().Sub(start).Milliseconds() }()
	fail := func(err error) ScanReport {
		r.Status, r.Error = ScanError, err.Error()
		log.Warn("access scan failed", "database", d.Name, "err", err)
		return r
	}
	if d.Engine == dbx.SQLite {
		r.Status, r.Note = ScanSkipped, "SQLite has no logins to scan: access is whoever can read the file"
		return r
	}
	raw := d.AdminURL
	if raw == "" {
		raw = d.URL
	}
	url, err := raw.Resolve()
	if err != nil {
		return fail(fmt.Errorf("database %s: url: %w", d.Name, err))
	}
	db, err := dbx.Open(ctx, d.Engine, url, false)
	if err != nil {
		return fail(fmt.Errorf("database %s: %w", d.Name, err))
	}
	defer db.Close()
	var ps []Principal
	switch d.Engine {
	case dbx.Postgres:
		ps, err = scanPostgres(ctx, db, deps.now())
	case dbx.MySQL:
		ps, err = scanMySQL(ctx, db)
	default:
		err = fmt.Errorf("%w %q", dbx.ErrUnknownEngine, d.Engine)
	}
	if err != nil {
		return fail(fmt.Errorf("scan database %s: %w", d.Name, err))
	}
	grants, err := deps.Store.LiveGrantRoles(ctx, svc.Name, d.Name)
	if err != nil {
		return fail(err)
	}
	for i := range ps {
		p := &ps[i]
		p.classify(d.StandingAccess, grants)
		if p.Class == ClassFinding {
			r.Findings = append(r.Findings, Finding{Principal: p.Name, Severity: p.Severity, Reasons: p.Reasons})
		}
	}
	slices.SortFunc(ps, func(a, b Principal) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(r.Findings, func(a, b Finding) int {
		if c := scanSeverityRank(b.Severity) - scanSeverityRank(a.Severity); c != 0 {
			return c
		}
		return cmp.Compare(a.Principal, b.Principal)
	})
	r.Principals = ps
	r.Status = ScanOK
	if len(r.Findings) > 0 {
		r.Status = ScanFindings
	}
	return r
}

// recordScan stores the report, audits it and alerts on what changed since
// the previous scan of the database that was not an error.
func recordScan(ctx context.Context, deps ScanDeps, log *slog.Logger, r *ScanReport, actor string) error {
	st := deps.Store
	prevAny, err := st.ListAccessScans(ctx, store.AccessScanFilter{Service: r.Service, Database: r.Database, Limit: 1})
	if err != nil {
		return err
	}
	prevOK, err := st.ListAccessScans(ctx, store.AccessScanFilter{Service: r.Service, Database: r.Database, NotStatuses: []string{ScanError}, Limit: 1})
	if err != nil {
		return err
	}
	before := map[string]Finding{}
	if len(prevOK) > 0 {
		var prev ScanReport
		if err := json.Unmarshal([]byte(prevOK[0].Report), &prev); err != nil {
			log.Warn("previous access scan report unreadable; treating every finding as new", "scan", prevOK[0].ID, "err", err)
		}
		for _, f := range prev.Findings {
			before[f.Principal] = f
		}
	}
	var fresh []Finding
	var gone []Finding
	if r.Status != ScanError {
		now := map[string]bool{}
		for _, f := range r.Findings {
			now[f.Principal] = true
			if _, ok := before[f.Principal]; !ok {
				fresh = append(fresh, f)
				r.New = append(r.New, f.Principal)
			}
		}
		for _, f := range before {
			if !now[f.Principal] {
				gone = append(gone, f)
				r.Resolved = append(r.Resolved, f.Principal)
			}
		}
		slices.SortFunc(gone, func(a, b Finding) int { return cmp.Compare(a.Principal, b.Principal) })
		slices.Sort(r.Resolved)
	}
	report, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("access scan %s/%s: encode report: %w", r.Service, r.Database, err)
	}
	row, err := st.InsertAccessScan(ctx, store.AccessScanRow{Service: r.Service, Database: r.Database, Status: r.Status, Findings: len(r.Findings),
		Report: string(report), Error: r.Error, Actor: actor, StartedAt: r.StartedAt})
	if err != nil {
		return err
	}
	r.ScanID = row.ID
	if deps.Audit != nil {
		outcome := r.Status
		if outcome == ScanSkipped {
			outcome = ScanOK
		}
		details := map[string]any{"scan_id": r.ScanID, "database": r.Database, "engine": r.Engine, "principals": len(r.Principals),
			"findings": len(r.Findings), "new": r.New, "resolved": r.Resolved, "duration_ms": r.DurationMS}
		if r.Note != "" {
			details["note"] = r.Note
		}
		if r.Error != "" {
			details["error"] = r.Error
		}
		if len(r.Findings) > 0 {
			var names []string
			for _, f := range r.Findings {
				names = append(names, f.Principal+" ("+f.Severity+")")
			}
			details["finding_principals"] = names
		}
		if err := deps.Audit(ctx, actor, "access.scan", r.Service+"/"+r.Database, outcome, details); err != nil {
			return fmt.Errorf("audit access scan %s/%s: %w", r.Service, r.Database, err)
		}
	}
	wasError := len(prevAny) > 0 && prevAny[0].Status == ScanError
	for _, m := range scanAlerts(r, fresh, gone, wasError) {
		if deps.Notifier == nil {
			log.Warn("access scan alert but no notifier is configured", "database", r.Database, "event", m.Event, "title", m.Title)
			continue
		}
		if _, err := deps.Notifier.Enqueue(ctx, m); err != nil {
			return fmt.Errorf("alert for access scan %s/%s: %w", r.Service, r.Database, err)
		}
	}
	return nil
}

// FindingKey is the dedup key of the alert about a principal's standing
// privileges on a database.
func FindingKey(service, database, principal string) string {
	return "access-finding:" + service + "/" + database + "/" + principal
}

func scanAlerts(r *ScanReport, fresh, gone []Finding, wasError bool) []notify.Message {
	id := r.Service + "/" + r.Database
	var out []notify.Message
	for _, f := range fresh {
		sev := notify.SeverityWarning
		if f.Severity == SeverityCritical {
			sev = notify.SeverityCritical
		}
		out = append(out, notify.Message{Event: EventFinding, Severity: sev, Service: r.Service, DedupKey: FindingKey(r.Service, r.Database, f.Principal),
			Title:  fmt.Sprintf("standing %s privileges on %s: %s", f.Severity, id, f.Principal),
			Text:   strings.Join(f.Reasons, "\n") + "\n\nAdd it to standing_access if it must stay, or revoke it and use just-in-time grants.",
			Fields: map[string]string{"database": id, "principal": f.Principal, "severity": f.Severity, "engine": r.Engine}})
	}
	for _, f := range gone {
		out = append(out, notify.Message{Event: EventFindingResolved, Severity: notify.SeverityInfo, Service: r.Service, Resolve: true,
			DedupKey: FindingKey(r.Service, r.Database, f.Principal),
			Title:    fmt.Sprintf("standing privileges of %s on %s are gone", f.Principal, id),
			Fields:   map[string]string{"database": id, "principal": f.Principal}})
	}
	key := "access-scan-error:" + id
	switch {
	case r.Status == ScanError && !wasError:
		out = append(out, notify.Message{Event: EventScanError, Severity: notify.SeverityWarning, Service: r.Service, DedupKey: key,
			Title: "standing-privilege scan of " + id + " could not run", Text: r.Error, Fields: map[string]string{"database": id}})
	case r.Status != ScanError && wasError:
		out = append(out, notify.Message{Event: EventScanError, Severity: notify.SeverityInfo, Service: r.Service, DedupKey: key, Resolve: true,
			Title: "standing-privilege scan of " + id + " runs again", Fields: map[string]string{"database": id}})
	}
	return out
}

// scanStrings runs q and returns its single text column.
func scanStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
