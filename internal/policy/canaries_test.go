package policy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// TestCanaries runs the shipped policy tests against the shipped policy:
// every canary (a request the policy must refuse) and every control passes.
func TestPolicyCanaries(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "examples", "policy-tests")
	cfg, err := config.Load(filepath.Join(dir, "steward.yaml"), config.LoadOptions{})
	if err != nil {
		t.Fatalf("load config:\n%v", err)
	}
	e, err := New(cfg.Policies)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := LoadTests(filepath.Join(dir, "canaries.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases = FillFromServices(cases, cfg.Services)
	canaries := 0
	for _, c := range cases {
		if strings.HasPrefix(c.Name, "canary ") {
			canaries++
		}
	}
	if canaries < 7 {
		t.Errorf("%d canaries, want at least 7", canaries)
	}
	// A Wednesday noon, outside the weekend freeze; freeze cases set their own time.
	now := time.Date(2025, 6, 11, 12, 0, 0, 0, time.UTC)
	for _, r := range RunTests(e, cases, now) {
		if !r.Pass {
			t.Errorf("%s (%s): %s\n  got %+v", r.Name, r.Where, strings.Join(r.Problems, "; "), r.Got)
		}
		if strings.HasPrefix(r.Name, "canary ") && r.Got.State == StateApproved && r.Frozen == "" {
			t.Errorf("%s: canary was approved with no freeze in force", r.Name)
		}
	}
}
