package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// Sentinel errors callers branch on.
var (
	// ErrBadPeriod marks a period that is empty or reversed.
	ErrBadPeriod = errors.New("bad report period")
	// ErrUnknownService marks a --service that is neither configured nor
	// present in the evidence.
	ErrUnknownService = errors.New("unknown service")
)

// Options select what a report covers.
type Options struct {
	From, To time.Time // the closed period [From, To]
	Service  string    // "" = every service
	// Actor is who generates the report, as the audit log names principals.
	Actor string
	// Now stamps the report; time.Now by default.
	Now func() time.Time
}

// Deps is what Build reads.
type Deps struct {
	Store  *store.Store
	Config *config.Config
	// Verifier checks the signature of the stored checkpoint the report
	// names (the key in audit.pub).
	Verifier note.Verifier
	// Scorecard, when set, evaluates the readiness scorecard of a service
	// ("" = all); its result is shown with the evidence. Optional.
	Scorecard func(ctx context.Context, service string) (*readiness.Scorecard, error)
}

// Report is the evidence of one period.
type Report struct {
	Title       string    `json:"title"`
	GeneratedAt time.Time `json:"generated_at"`
	GeneratedBy string    `json:"generated_by"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Service     string    `json:"service,omitempty"` // the --service filter
	// Checkpoint is the signed checkpoint that covers the evidence (or the
	// newest one when none covers it all); nil when the store has none.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Coverage   Coverage    `json:"coverage"`
	Sections   []Section   `json:"sections"`
	// Scorecard is the readiness scorecard when an evaluator was wired in;
	// ScorecardNote says why there is none otherwise.
	Scorecard     *readiness.Scorecard `json:"scorecard,omitempty"`
	ScorecardNote string               `json:"scorecard_note,omitempty"`
}

// Checkpoint is a signed checkpoint of the audit log, as stored.
type Checkpoint struct {
	ID        int64     `json:"id"`
	Origin    string    `json:"origin"`
	Size      int64     `json:"size"` // the events it covers: seq 1..Size
	Hash      string    `json:"hash"` // hex hash of event Size
	CreatedAt time.Time `json:"created_at"`
	Note      string    `json:"note"` // the signed note, as in checkpoint.txt
}

// Coverage says whether the checkpoint covers every audited item.
type Coverage struct {
	Items     int   `json:"items"`     // evidence items in the report
	Audited   int   `json:"audited"`   // items with an audit event
	MaxSeq    int64 `json:"max_seq"`   // the highest such event
	Covered   bool  `json:"covered"`   // the checkpoint covers MaxSeq
	Uncovered int   `json:"uncovered"` // audited items after the checkpoint
	// Problem says what is missing and what to do; "" when covered.
	Problem string `json:"problem,omitempty"`
}

// Section is the evidence of one service, or of Steward itself (Service "")
// for what is not tied to a service: the emergency kit, the audit log's
// checkpoints, notification tests.
type Section struct {
	Service     string                 `json:"service"`
	Title       string                 `json:"title"`
	Tier        int                    `json:"tier,omitempty"`
	Owners      []string               `json:"owners,omitempty"`
	Description string                 `json:"description,omitempty"`
	Controls    []ControlEvidence      `json:"controls"`
	Card        *readiness.ServiceCard `json:"-"`
}

// ControlEvidence is one control of a section with its evidence.
type ControlEvidence struct {
	Control readiness.Control `json:"control"`
	// Notes are facts computed over the evidence or read from the
	// configuration at report time (counts, contacts, policy rules).
	Notes    []string             `json:"notes,omitempty"`
	Evidence []readiness.Evidence `json:"evidence"`
	// From the scorecard, when there is one.
	Status readiness.Status  `json:"status,omitempty"`
	Reason string            `json:"reason,omitempty"`
	Waiver *readiness.Waiver `json:"waiver,omitempty"`
}

// ParseDate parses a report date: YYYY-MM-DD (midnight UTC; as an end date,
// the end of that day) or RFC 3339.
func ParseDate(s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			return t.Add(24*time.Hour - time.Microsecond), nil
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date: use YYYY-MM-DD or RFC 3339 like 2026-03-01T00:00:00Z", s)
	}
	return t.UTC(), nil
}

// Build collects the evidence of the period. It only reads the store.
func Build(ctx context.Context, d Deps, o Options) (*Report, error) {
	if o.From.IsZero() || o.To.IsZero() || !o.From.Before(o.To) {
		return nil, fmt.Errorf("%w: from %s to %s; the start must be before the end", ErrBadPeriod, o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	r := &Report{
		Title: "Steward evidence report", GeneratedAt: now().UTC().Truncate(time.Second), GeneratedBy: o.Actor,
		From: o.From.UTC(), To: o.To.UTC(), Service: o.Service,
	}
	c := &collector{d: d, p: store.Period{From: r.From, To: r.To}, service: o.Service, sections: map[string]*Section{}}
	if err := c.collect(ctx); err != nil {
		return nil, err
	}
	if o.Service != "" && c.serviceConfig(o.Service) == nil && c.sections[o.Service] == nil {
		var names []string
		for _, s := range d.Config.Services {
			names = append(names, s.Name)
		}
		return nil, fmt.Errorf("%w %q: configured services are %s", ErrUnknownService, o.Service, strings.Join(names, ", "))
	}
	r.Sections = c.ordered()
	if err := r.attachCheckpoint(ctx, d); err != nil {
		return nil, err
	}
	if d.Scorecard != nil {
		sc, err := d.Scorecard(ctx, o.Service)
		if err != nil {
			r.ScorecardNote = "the scorecard could not be evaluated: " + err.Error()
		} else {
			r.Scorecard = sc
			r.attachScorecard(sc)
		}
	} else {
		r.ScorecardNote = "no scorecard was evaluated for this report; run `steward score` for the current one"
	}
	return r, nil
}

// attachCheckpoint finds the checkpoint that covers the highest audit event
// of the evidence, verifies its signature and records the coverage.
func (r *Report) attachCheckpoint(ctx context.Context, d Deps) error {
	cov := &r.Coverage
	for _, s := range r.Sections {
		for _, ce := range s.Controls {
			for _, e := range ce.Evidence {
				cov.Items++
				if e.AuditSeq > 0 {
					cov.Audited++
					cov.MaxSeq = max(cov.MaxSeq, e.AuditSeq)
				}
			}
		}
	}
	sc, err := d.Store.CheckpointCovering(ctx, max(cov.MaxSeq, 1))
	if errors.Is(err, store.ErrNotFound) {
		sc, err = d.Store.LatestCheckpoint(ctx)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		cov.Problem = "the store holds no signed checkpoint of the audit log, so nothing in this report can be verified; " +
			"run `steward audit checkpoint` and generate the report again"
		return nil
	case err != nil:
		return err
	}
	if d.Verifier == nil {
		return errors.New("report: no checkpoint verifier key")
	}
	cp, err := audit.ParseCheckpoint([]byte(sc.Note), d.Verifier)
	if err != nil {
		return fmt.Errorf("stored checkpoint %d (size %d) does not verify with key %s: %w; use the audit.pub of the Steward that signed it",
			sc.ID, sc.Size, d.Verifier.Name(), err)
	}
	r.Checkpoint = &Checkpoint{ID: sc.ID, Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, CreatedAt: sc.CreatedAt, Note: sc.Note}
	for _, s := range r.Sections {
		for _, ce := range s.Controls {
			for _, e := range ce.Evidence {
				if e.AuditSeq > cp.Size {
					cov.Uncovered++
				}
			}
		}
	}
	cov.Covered = cov.Uncovered == 0
	if !cov.Covered {
		cov.Problem = fmt.Sprintf("%d audited evidence item(s) are recorded by events after the newest signed checkpoint (size %d; highest event %d), "+
			"so they cannot be verified against it; run `steward audit checkpoint` and generate the report again", cov.Uncovered, cp.Size, cov.MaxSeq)
	}
	return nil
}

// attachScorecard copies each control's status, reason and waiver onto the
// sections.
func (r *Report) attachScorecard(sc *readiness.Scorecard) {
	for i := range r.Sections {
		s := &r.Sections[i]
		idx := slices.IndexFunc(sc.Services, func(c readiness.ServiceCard) bool { return c.Service == s.Service })
		if s.Service == "" || idx < 0 {
			continue
		}
		card := sc.Services[idx]
		s.Card = &card
		for j := range s.Controls {
			ce := &s.Controls[j]
			for _, res := range card.Results {
				if res.Control.ID == ce.Control.ID {
					ce.Status, ce.Reason, ce.Waiver = res.Status, res.Reason, res.Waiver
				}
			}
		}
	}
}
