package all_test

import (
	"errors"
	"testing"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/all"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := all.Registry()
	// The names are the config's engine names (config: databases[].engine).
	for _, name := range []string{"postgres", "mysql", "sqlite"} {
		e, err := r.Get(name)
		if err != nil || e.Name() != name {
			t.Errorf("Get(%q) = %v, %v", name, e, err)
		}
	}
	if _, err := r.Get("oracle"); !errors.Is(err, dbx.ErrUnknownEngine) {
		t.Errorf("Get(oracle): %v, want ErrUnknownEngine", err)
	}
}
