package drill

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file; if the change is intended, run go test -run %s -update\n--- got:\n%s", path, t.Name(), got)
	}
}

func f64(v float64) *float64 { return &v }

// fixedService and fixedReport are a realistic passed drill of a
// PostgreSQL service, with every field the runbook reads.
func fixedService() *config.Service {
	return &config.Service{
		Name:   "shop",
		Owners: []string{"team-shop"},
		Contacts: config.Contacts{
			Oncall:      config.Contact{Name: "shop on-call", Phone: "+49 30 1234567", URL: "https://pager.example.com/shop"},
			Escalation:  config.Contact{Name: "Dana Lead", Email: "dana@example.com"},
			ProviderNOC: config.Contact{Name: "Hoster NOC", Phone: "+49 30 7654321"},
		},
		Databases:  []config.Database{{Name: "main", Engine: "postgres", URL: "env:SHOP_DB_URL"}},
		Objectives: config.Objectives{RTO: "30m", RPO: "24h"},
		Backups: []config.Backup{{Name: "nightly", Database: "main", Method: "pg_dump", Repository: "file:///var/backups/steward", Format: "custom", Jobs: 2,
			Encrypt: config.Encrypt{Recipients: []string{"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"}, Identity: "file:/etc/steward/backup.key"}}},
		Drills: []config.Drill{{Name: "weekly", Backup: "nightly", Pick: "latest", Scratch: config.Scratch{Kind: "ephemeral"},
			Freshness: "SELECT max(updated_at) FROM orders", RowCounts: "exact", Amcheck: true, Timeout: "2h",
			Verify: []config.Verify{{Name: "orders have a status", SQL: "SELECT count(*) FROM orders WHERE status IS NULL", Expect: "== 0"}}}},
	}
}

func fixedReport() *Report {
	started := time.Date(2026, 3, 2, 5, 0, 0, 0, time.UTC)
	finished := started.Add(95 * time.Second)
	bt := time.Date(2026, 3, 2, 2, 0, 3, 0, time.UTC)
	return &Report{
		RunID: 42, Mode: "drill", Service: "shop", Drill: "weekly", Database: "main", Engine: "postgres", Status: StatusPassed,
		BackupID: "20260302T020000Z-1a2b3c", BackupRef: "shop/nightly/20260302T020000Z-1a2b3c", BackupTime: &bt, BackupBytes: 734003200,
		Repository: "file:///var/backups/steward", Encrypted: true,
		RTOSeconds: f64(91.25), RPOSeconds: f64(10815.5), RPOSource: RPORestoredData, Freshness: "2026-03-02T01:59:44.5Z",
		Objectives: Objectives{RTOSeconds: f64(1800), RPOSeconds: f64(86400)},
		Phases: []Phase{
			{Name: PhasePick, Seconds: 0.012},
			{Name: PhaseProvision, Seconds: 2.304},
			{Name: "fetch", Seconds: 3.1, Bytes: 734003200, MBPerS: 236.775},
			{Name: "verify checksum", Seconds: 1.2, Bytes: 734003200, MBPerS: 611.669},
			{Name: "decrypt", Seconds: 2.5, Bytes: 733950000, MBPerS: 293.58},
			{Name: "restore data", Seconds: 48.9, Bytes: 733950000, MBPerS: 15.009},
			{Name: "build indexes", Seconds: 30.1},
			{Name: PhaseVerify, Seconds: 3.05},
			{Name: PhaseTeardown, Seconds: 0.8},
		},
		Verifications: []Verification{
			{Name: "row counts", Status: "passed", Detail: "4 tables, 5000150 rows match the manifest"},
			{Name: "orders have a status", Status: "passed", Detail: "value 0 == 0", SQL: "SELECT count(*) FROM orders WHERE status IS NULL", Expect: "== 0"},
			{Name: "amcheck", Status: "passed", Detail: "no corruption found"},
			{Name: "RTO objective", Status: "passed", Detail: "RTO 1m31s within objective 30m0s"},
			{Name: "RPO objective", Status: "passed", Detail: "RPO 3h0m16s within objective 24h0m0s"},
		},
		Scratch: "ephemeral PostgreSQL 15.8 cluster on 127.0.0.1:40123", ScratchLabel: "steward-drill-shop-weekly-0badcafe",
		StartedAt: started, FinishedAt: &finished, Actor: "system:schedule",
		Commands: []string{
			"pg_restore --no-owner --no-privileges --exit-on-error -j 2 --section=pre-data --section=data -d 'postgresql://postgres@127.0.0.1:40123/steward_drill' db.dump",
			"pg_restore --no-owner --no-privileges --exit-on-error -j 2 --section=post-data -d 'postgresql://postgres@127.0.0.1:40123/steward_drill' db.dump",
		},
		BackupCmds:   []string{"pg_dump --format=custom --no-owner --snapshot=00000003-0000001B-1 -f db.dump 'postgresql://backup@db.internal:5432/shop'"},
		ToolVersions: map[string]string{"backup": "pg_dump (PostgreSQL) 15.8", "restore": "pg_restore (PostgreSQL) 15.8", "source_server": "PostgreSQL 15.8", "scratch_server": "PostgreSQL 15.8"},
	}
}

func TestRunbookGolden(t *testing.T) {
	t.Parallel()
	svc := fixedService()
	m := &backup.Manifest{ID: "20260302T020000Z-1a2b3c", Service: "shop", Backup: "nightly", Objects: []backup.Object{
		{Name: "db.dump.age", Size: 734003200, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
	}}
	got, err := Runbook(svc, svc.Drill("weekly"), fixedReport(), m)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "runbook.golden", got)

	// Without contacts, manifest or encryption, it says so.
	svc.Contacts = config.Contacts{}
	rep := fixedReport()
	rep.Encrypted = false
	got, err = Runbook(svc, svc.Drill("weekly"), rep, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "runbook-minimal.golden", got)
}

func TestRunbookNeedsPassedDrill(t *testing.T) {
	t.Parallel()
	svc := fixedService()
	rep := fixedReport()
	rep.Status = StatusFailed
	if _, err := Runbook(svc, svc.Drill("weekly"), rep, nil); !errors.Is(err, ErrNoPassedDrill) {
		t.Fatalf("failed drill: %v", err)
	}
	if _, err := Runbook(svc, svc.Drill("weekly"), nil, nil); !errors.Is(err, ErrNoPassedDrill) {
		t.Fatalf("no drill: %v", err)
	}
}
