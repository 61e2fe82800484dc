package readiness_test

import (
	"slices"
	"testing"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
)

func TestCatalog(t *testing.T) {
	t.Parallel()
	cat := readiness.Catalog()
	if len(cat) != 14 {
		t.Fatalf("catalog has %d controls, want 14", len(cat))
	}
	if !slices.Equal(readiness.IDs(), config.ReadinessControlIDs) {
		t.Fatalf("config.ReadinessControlIDs %v differ from the catalog %v: add new controls to both", config.ReadinessControlIDs, readiness.IDs())
	}
	for i, c := range cat {
		if c.Number != i+1 || c.ID == "" || c.Title == "" || c.Weight <= 0 || len(c.Refs) == 0 {
			t.Errorf("control %d: %+v: want number %d, an ID, a title, a weight and framework refs", i, c, i+1)
		}
		for _, r := range c.Refs {
			if r.Framework != readiness.ISO27001 && r.Framework != readiness.SOC2 && r.Framework != readiness.PCIDSS || r.Clause == "" {
				t.Errorf("control %s: bad ref %+v", c.ID, r)
			}
		}
		if got, ok := readiness.Lookup(c.ID); !ok || got.Number != c.Number {
			t.Errorf("Lookup(%s) = %+v, %v", c.ID, got, ok)
		}
	}
	// Catalog returns copies.
	cat[0].Refs[0].Clause = "changed"
	if readiness.Catalog()[0].Refs[0].Clause == "changed" {
		t.Fatal("Catalog shares its slices with the caller")
	}
}

func TestEveryControlEvaluated(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	// With no evidence at all, nothing passes silently except what has
	// nothing to prove (no data changes, no break-glass uses, contacts).
	for id, r := range b.results("shop") {
		if r.Reason == "" {
			t.Errorf("%s: no reason", id)
		}
		switch id {
		case readiness.CtlDataChanges, readiness.CtlBreakGlass, readiness.CtlContacts, readiness.CtlGrants:
			if r.Status != readiness.Pass {
				t.Errorf("%s: %s (%s), want pass with no evidence needed", id, r.Status, r.Reason)
			}
		default:
			if r.Status == readiness.Pass {
				t.Errorf("%s passes without evidence: %s", id, r.Reason)
			}
		}
	}
}
