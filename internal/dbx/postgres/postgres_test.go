package postgres_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/dbxtest"
	"github.com/stewardhq/steward/internal/dbx/postgres"
	"github.com/stewardhq/steward/internal/testenv"
)

func source(t *testing.T) string { return testenv.PostgresURL(t) }

func TestConformanceEphemeral(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	dbxtest.Run(t, postgres.New(), source, dbx.ScratchOptions{Kind: "ephemeral", Label: "steward-dbxtest-pg-"})
}

// The server kind creates scratch databases beside a fresh testenv database,
// whose URL serves as the admin URL.
func TestConformanceServer(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	dbxtest.Run(t, postgres.New(), source, dbx.ScratchOptions{Kind: "server", ServerURL: testenv.PostgresURL(t), Label: "steward-dbxtest-pg-"})
}

func TestDirectoryFormat(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	ctx := context.Background()
	e := postgres.New()
	src := source(t)
	dbxtest.Seed(t, e, src)
	dir := t.TempDir()
	d, err := e.Dump(ctx, src, dir, dbx.DumpOptions{Format: "directory", Jobs: 2, Freshness: dbxtest.FreshnessQuery})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != "directory" || len(d.Files) < 3 || !strings.Contains(d.Commands[0], "--jobs=2") {
		t.Errorf("directory dump: format %q files %v commands %v", d.Format, d.Files, d.Commands)
	}
	sc, err := e.Scratch(ctx, dbx.ScratchOptions{Kind: "server", ServerURL: src, Label: "steward-dbxtest-pgdir-" + strings.ToLower(rand.Text()[:8])})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Destroy(ctx)
	rep, err := e.Restore(ctx, d, dir, sc.URL, dbx.RestoreOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Phases) != 2 || rep.Phases[1].Name != "build indexes/constraints" {
		t.Errorf("phases %+v", rep.Phases)
	}
	got, err := e.RowCounts(ctx, sc.URL)
	if err != nil || got["public.orders"] != dbxtest.Orders || got["public.customers"] != dbxtest.Customers {
		t.Errorf("restored counts %v (%v)", got, err)
	}
	out, err := e.Amcheck(ctx, sc.URL)
	if err != nil {
		t.Errorf("amcheck of a clean restore: %v\n%s", err, out)
	}
}

func needBinaries(t *testing.T) {
	t.Helper()
	for _, b := range []string{"pg_dump", "pg_restore", "initdb", "pg_ctl", "pg_amcheck"} {
		if _, err := postgres.New().Bin(b); err != nil {
			testenv.Skip(t, "%v", err)
		}
	}
}
