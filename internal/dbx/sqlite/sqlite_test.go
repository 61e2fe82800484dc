package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/dbxtest"
	"github.com/stewardhq/steward/internal/dbx/sqlite"
)

// source is an empty database file, as an application would create it.
func source(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.db")
	if err := sqlite.Create(p); err != nil {
		t.Fatal(err)
	}
	return "sqlite://" + p
}

func TestConformance(t *testing.T) {
	t.Parallel()
	dbxtest.Run(t, sqlite.New(), source, dbx.ScratchOptions{Kind: "ephemeral", Label: "steward-dbxtest-lite-"})
}

func TestPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/var/lib/app.db":              "/var/lib/app.db",
		"sqlite:///var/lib/app.db":     "/var/lib/app.db",
		"sqlite:///var/lib/app.db?x=1": "/var/lib/app.db",
		"sqlite:data/app.db":           "data/app.db",
		"data/app?.db":                 "data/app?.db",
	} {
		if got, err := sqlite.Path(in); err != nil || got != want {
			t.Errorf("Path(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "sqlite://", "postgres://x/y"} {
		if _, err := sqlite.Path(bad); err == nil {
			t.Errorf("Path(%q) succeeded", bad)
		}
	}
}

func TestServerScratchIsAnError(t *testing.T) {
	t.Parallel()
	_, err := sqlite.New().Scratch(t.Context(), dbx.ScratchOptions{Kind: "server", Label: "x", Dir: t.TempDir()})
	if err == nil {
		t.Fatal("server scratch for sqlite succeeded")
	}
}
