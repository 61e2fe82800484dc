package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/postgres"
)

// ErrNoPostgres means PostgreSQL's server binaries are not installed; the
// demo then skips its PostgreSQL service.
var ErrNoPostgres = errors.New("PostgreSQL binaries (initdb, pg_ctl, pg_dump, pg_restore) not found")

// Postgres is the demo's PostgreSQL "production" database: a throwaway
// cluster on a loopback port, seeded with a product catalog.
type Postgres struct {
	URL     string
	scratch *dbx.Scratch
}

const pgLabelPrefix = "steward-demo-catalog"

var catalogTmpl = `# Written by steward demo when PostgreSQL is installed: the catalog service
# runs on a throwaway cluster the demo starts (its URL is in catalog-db.url).
services:
  - name: catalog
    description: Product catalog and prices (PostgreSQL)
    owners: [team-catalog]
    tier: 2
    objectives: {rto: 30m, rpo: 24h}
    contacts:
      oncall: {name: Catalog on-call, phone: "+1 555 0120"}
      escalation: {name: Head of Engineering, email: cto@example.com}
    databases:
      - name: main
        engine: postgres
        url: file:../catalog-db.url
        # Roles allowed to hold privileges permanently; the scan reports the rest.
        standing_access: [steward]
    access:
      - {database: main, profile: read-only, grants: ["SELECT ON ALL TABLES IN SCHEMA public"], max: 1h, break_glass: true, break_glass_max: 30m}
      - {database: main, profile: read-write, grants: ["SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public"], max: 30m}
    backups:
      - name: nightly
        database: main
        method: pg_dump
        repository: ../backups
        freshness: SELECT max(updated_at) FROM products
    drills:
      - name: weekly
        backup: nightly
        scratch: {kind: ephemeral}
        freshness: SELECT max(updated_at) FROM products
        verify:
          - {name: all products restored, sql: "SELECT count(*) FROM products", expect: "== 10000"}
          - {name: no negative prices, sql: "SELECT count(*) FROM products WHERE price_cents < 0", expect: "== 0"}
`

// StartPostgres starts the catalog cluster under dir and writes the files
// the config includes. It removes clusters a killed demo left behind first.
// Without PostgreSQL binaries it returns ErrNoPostgres and removes the
// catalog service from the workspace.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	include := filepath.Join(dir, "services", "catalog.yaml")
	eng := postgres.New()
	if _, err := eng.Bin("initdb"); err != nil {
		os.Remove(include)
		return nil, ErrNoPostgres
	}
	base := filepath.Join(dir, "pg")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	opts := dbx.ScratchOptions{Kind: "ephemeral", Dir: base, Label: pgLabelPrefix}
	if _, err := eng.Leftovers(ctx, opts, nil); err != nil {
		return nil, fmt.Errorf("remove the catalog cluster of an earlier demo: %w", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	opts.Label = pgLabelPrefix + "-" + hex.EncodeToString(b)
	sc, err := eng.Scratch(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start the catalog cluster: %w", err)
	}
	p := &Postgres{URL: sc.URL, scratch: sc}
	seed := `
CREATE TABLE products (
    id          bigint PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    price_cents integer NOT NULL,
    updated_at  timestamptz NOT NULL
);
INSERT INTO products
SELECT i, 'SKU-' || lpad(i::text, 6, '0'), 'Product ' || i, 100 + (i * 37) % 50000,
       now() - make_interval(mins => (i % 1440))
FROM generate_series(1, 10000) AS i;
CREATE INDEX products_updated ON products (updated_at);
-- A standing privilege nobody remembers granting, for the scan to find.
CREATE ROLE legacy_reporting LOGIN PASSWORD 'changeme';
GRANT UPDATE ON products TO legacy_reporting;`
	if err := eng.Exec(ctx, sc.URL, seed); err != nil {
		p.Close(ctx)
		return nil, fmt.Errorf("seed the catalog: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "catalog-db.url"), []byte(sc.URL+"\n"), 0o600); err != nil {
		p.Close(ctx)
		return nil, err
	}
	if err := os.WriteFile(include, []byte(catalogTmpl), 0o644); err != nil {
		p.Close(ctx)
		return nil, err
	}
	return p, nil
}

// Describe says where the cluster runs, without its password.
func (p *Postgres) Describe() string { return p.scratch.Description }

// Close stops and removes the cluster.
func (p *Postgres) Close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.scratch.Destroy(ctx)
}
