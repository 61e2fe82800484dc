package policy

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

// golden compares got with testdata/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func examplePolicy(t *testing.T) (*config.Config, *Engine) {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "examples", "policy-tests", "steward.yaml"), config.LoadOptions{})
	if err != nil {
		t.Fatalf("load config:\n%v", err)
	}
	return cfg, mustNew(t, cfg.Policies)
}

func TestPolicyExplain(t *testing.T) {
	t.Parallel()
	cfg, e := examplePolicy(t)
	wednesday := time.Date(2025, 6, 11, 12, 0, 0, 0, time.UTC)
	friday := time.Date(2025, 6, 13, 19, 0, 0, 0, time.UTC)
	prop := func(kind, service, risk string, facts map[string]any) Proposal {
		p := Proposal{Kind: kind, Service: service, Risk: risk, Requester: "alice", Facts: facts}
		if s := cfg.Service(service); s != nil {
			p.Tier, p.Labels = s.Tier, s.Labels
		}
		return p
	}
	for _, tc := range []struct {
		name string
		p    Proposal
		now  time.Time
	}{
		{"large-fix", prop("fix.apply", "shop", "high", map[string]any{"rows_affected": 500}), wednesday},
		{"missing-fact", prop("fix.apply", "shop", "high", nil), wednesday},
		{"auto-approve", prop("deploy.gate", "blog", "low", nil), wednesday},
		{"default", prop("restore.run", "blog", "high", nil), wednesday},
		{"frozen", prop("deploy.gate", "shop", "medium", nil), friday},
		{"pci", prop("access.grant", "billing", "medium", nil), wednesday},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			golden(t, filepath.Join("explain", tc.name+".golden"), e.ExplainAt(tc.p, tc.now))
		})
	}
}

func TestPolicyExplainUsesTheClock(t *testing.T) {
	t.Parallel()
	_, e := examplePolicy(t)
	e.now = func() time.Time { return time.Date(2025, 6, 13, 19, 0, 0, 0, time.UTC) }
	p := Proposal{Kind: "deploy.gate", Service: "shop"}
	if got, want := e.Explain(p), e.ExplainAt(p, e.now()); got != want {
		t.Fatalf("Explain differs from ExplainAt at the engine's clock:\n%s\n%s", got, want)
	}
}
