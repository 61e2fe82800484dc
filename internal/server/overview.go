package server

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

// scoreTimeout bounds one scorecard evaluation for a page; a slow
// evaluation shows as "not available" rather than holding the page.
const scoreTimeout = 10 * time.Second

// scoreTTL is how long pages reuse a scorecard evaluation. An evaluation
// reads the evidence of every control (and verifies the audit log), far
// more than a page view should cost; the pages show when it was evaluated.
const scoreTTL = 15 * time.Second

// scoreCache keeps recent evaluations by service ("" all). One evaluation
// runs at a time, so a burst of page views evaluates once.
type scoreCache struct {
	mu   sync.Mutex
	byID map[string]*readiness.Scorecard
}

// statusRank orders control statuses for people: what needs work first.
func statusRank(s readiness.Status) int {
	switch s {
	case readiness.Fail:
		return 0
	case readiness.Warn:
		return 1
	case readiness.Unknown:
		return 2
	default:
		return 3
	}
}

// scoreView is what pages show of the scorecard: the card, or why there
// is none.
type scoreView struct {
	Card        *readiness.Scorecard
	Unavailable string // why there is no scorecard ("" when there is one)
}

// scorecard evaluates the scorecard of service ("" all). A server without
// one, or an evaluation that fails, is not an error page: the pages say the
// scorecard is not available and show the rest.
func (s *Server) scorecard(ctx context.Context, r *http.Request, service string) scoreView {
	if s.score == nil {
		return scoreView{Unavailable: "The readiness scorecard is not enabled on this server."}
	}
	c := &s.scores
	c.mu.Lock()
	defer c.mu.Unlock()
	if card := c.byID[service]; card != nil && s.now().Sub(card.EvaluatedAt) < scoreTTL {
		return scoreView{Card: card}
	}
	ctx, cancel := context.WithTimeout(ctx, scoreTimeout)
	defer cancel()
	card, err := s.score(ctx, service)
	if err != nil {
		he := s.fail(r, fmt.Errorf("scorecard: %w", err))
		return scoreView{Unavailable: "The scorecard could not be evaluated: " + he.Message + "."}
	}
	if c.byID == nil {
		c.byID = map[string]*readiness.Scorecard{}
	}
	c.byID[service] = card
	return scoreView{Card: card}
}

// overviewService is a service's line on the overview.
type overviewService struct {
	serviceJSON
	Card      *readiness.ServiceCard // nil without a scorecard
	Counts    statusCounts
	Attention []readiness.Result // not passing: fail, warn, unknown; the first attentionPerService
	More      int                // how many more are not passing
}

// attentionPerService is how many controls that need work the services
// table names per service; the service page has them all.
const attentionPerService = 3

// attention is one control that is not passing, on the overview.
type attention struct {
	Service string
	Tier    int
	readiness.Result
}

// overviewApproval is a pending action on the overview.
type overviewApproval struct {
	A       *action.Action
	Age     string
	Missing string
	Yours   bool // the viewer may vote and has not
}

type overviewData struct {
	Score     scoreView
	Services  []overviewService
	Attention []attention
	Approvals []overviewApproval
	Yours     int // approvals waiting for the viewer
	Overdue   []reviewJSON
	Actions   bool // the pipeline is wired: approvals and reviews are shown
}

// attentionShown bounds the "needs attention" list.
const attentionShown = 30

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	d := overviewData{Score: s.scorecard(ctx, r, ""), Actions: s.actions != nil}
	cards := map[string]*readiness.ServiceCard{}
	if d.Score.Card != nil {
		for i := range d.Score.Card.Services {
			c := &d.Score.Card.Services[i]
			cards[c.Service] = c
		}
	}
	for _, svc := range s.snap.Load().services {
		o := overviewService{serviceJSON: svc, Card: cards[svc.Name]}
		if o.Card != nil {
			for _, res := range o.Card.Results {
				o.Counts.add(res.Status)
				if res.Status != readiness.Pass {
					o.Attention = append(o.Attention, res)
					d.Attention = append(d.Attention, attention{Service: svc.Name, Tier: svc.Tier, Result: res})
				}
			}
			slices.SortStableFunc(o.Attention, func(a, b readiness.Result) int { return statusRank(a.Status) - statusRank(b.Status) })
			if len(o.Attention) > attentionPerService {
				o.Attention, o.More = o.Attention[:attentionPerService], len(o.Attention)-attentionPerService
			}
		}
		d.Services = append(d.Services, o)
	}
	// Worst first: lowest score, then most important tier; services without
	// a card keep their configuration order at the end.
	slices.SortStableFunc(d.Services, func(a, b overviewService) int {
		switch {
		case a.Card == nil || b.Card == nil:
			return cmp.Compare(boolInt(a.Card == nil), boolInt(b.Card == nil))
		case a.Card.Score != b.Card.Score:
			return cmp.Compare(a.Card.Score, b.Card.Score)
		}
		return cmp.Compare(a.Tier, b.Tier)
	})
	slices.SortStableFunc(d.Attention, func(a, b attention) int {
		return cmp.Or(statusRank(a.Status)-statusRank(b.Status), cmp.Compare(a.Tier, b.Tier), cmp.Compare(a.Control.Number, b.Control.Number))
	})
	if len(d.Attention) > attentionShown {
		d.Attention = d.Attention[:attentionShown]
	}
	if s.actions != nil {
		if err := s.overviewActions(ctx, p, &d); err != nil {
			return err
		}
	}
	s.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", User: p.User.Name, Data: d})
	return nil
}

// overviewActions fills in the pending approvals (the viewer's first) and
// the overdue break-glass reviews.
func (s *Server) overviewActions(ctx context.Context, p auth.Principal, d *overviewData) error {
	list, err := s.actions.List(ctx, store.ActionFilter{States: []string{string(action.PendingApproval)}, Limit: uiListLimit})
	if err != nil {
		return err
	}
	now := s.now()
	for _, a := range list {
		c, err := s.card(ctx, p, a, "")
		if err != nil {
			return err
		}
		d.Approvals = append(d.Approvals, overviewApproval{A: a, Age: age(now, a.CreatedAt), Missing: c.Decision.Missing, Yours: c.CanVote})
		if c.CanVote {
			d.Yours++
		}
	}
	slices.SortStableFunc(d.Approvals, func(a, b overviewApproval) int { return boolInt(b.Yours) - boolInt(a.Yours) })
	reviews, err := s.actions.Reviews(ctx, action.ReviewOpen)
	if err != nil {
		return err
	}
	for _, row := range reviews {
		if v := s.reviewView(row); v.Overdue {
			d.Overdue = append(d.Overdue, v)
		}
	}
	return nil
}

// statusCounts counts a service's controls by status.
type statusCounts struct{ Fail, Warn, Unknown, Pass int }

func (c *statusCounts) add(s readiness.Status) {
	switch s {
	case readiness.Fail:
		c.Fail++
	case readiness.Warn:
		c.Warn++
	case readiness.Pass:
		c.Pass++
	default:
		c.Unknown++
	}
}

// trend says how a score moved since the previous one ("" without one).
func trend(now float64, prev *float64) string {
	if prev == nil {
		return ""
	}
	switch d := now - *prev; {
	case d >= 0.5:
		return fmt.Sprintf(" ▲ %.0f in 30 days", d)
	case d <= -0.5:
		return fmt.Sprintf(" ▼ %.0f in 30 days", -d)
	default:
		return " (unchanged in 30 days)"
	}
}

// scoreClass grades a score for its colour.
func scoreClass(score float64) string {
	switch {
	case score >= 90:
		return "score-good"
	case score >= 70:
		return "score-fair"
	default:
		return "score-poor"
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
