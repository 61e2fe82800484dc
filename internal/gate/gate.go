package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/config"
)

// Kind is the action kind name.
const Kind = "deploy.gate"

// Params are the gate's parameters.
type Params struct {
	Action  string `json:"action"`  // what is gated, e.g. deploy, migrate
	Version string `json:"version"` // what is deployed
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+\-/:@]{0,127}$`)

// Gate is the deploy.gate kind. Its risk follows the service's tier.
type Gate struct {
	// Config returns the current config (to read the service tier).
	Config func() *config.Config
}

var _ action.Kind = (*Gate)(nil)

// Name implements action.Kind.
func (g *Gate) Name() string { return Kind }

func parse(a *action.Action) (Params, error) {
	var p Params
	if err := json.Unmarshal(a.Params, &p); err != nil {
		return p, fmt.Errorf("%w: %v", action.ErrBadParams, err)
	}
	if p.Action == "" {
		p.Action = "deploy"
	}
	if !versionRE.MatchString(p.Version) {
		return p, fmt.Errorf("%w: version %q: use the release tag or commit, e.g. v1.4.2 or 3f2c1ab", action.ErrBadParams, p.Version)
	}
	return p, nil
}

// Plan describes the gate. Nothing is changed.
func (g *Gate) Plan(_ context.Context, a *action.Action) (action.Plan, error) {
	p, err := parse(a)
	if err != nil {
		return action.Plan{}, err
	}
	if a.Service == "" {
		return action.Plan{}, fmt.Errorf("%w: a deploy gate needs --service", action.ErrBadParams)
	}
	tier := 3
	if s := g.Config().Service(a.Service); s != nil {
		tier = s.Tier
	}
	risk := action.RiskLow
	switch tier {
	case 1:
		risk = action.RiskHigh
	case 2:
		risk = action.RiskMedium
	}
	return action.Plan{
		Summary: fmt.Sprintf("%s %s version %s (tier %d)", p.Action, a.Service, p.Version, tier),
		Details: map[string]any{"action": p.Action, "version": p.Version, "service": a.Service},
		Facts:   map[string]any{"tier": tier, "version": p.Version, "gate": p.Action},
		Risk:    risk,
	}, nil
}

// Execute opens the gate: the CI job waiting on it proceeds. Steward does
// not deploy anything itself; the record of who let what through is the
// point.
func (g *Gate) Execute(_ context.Context, a *action.Action) (action.Result, error) {
	p, err := parse(a)
	if err != nil {
		return action.Result{}, err
	}
	return action.Result{
		Summary: fmt.Sprintf("gate open: %s %s %s", p.Action, a.Service, p.Version),
		Details: map[string]any{"gate": "open", "version": p.Version},
	}, nil
}

// Verify has nothing to check: opening the gate cannot half-succeed.
func (g *Gate) Verify(context.Context, *action.Action, action.Result) error { return nil }
