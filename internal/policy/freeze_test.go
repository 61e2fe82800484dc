package policy

import (
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

func TestPolicyFrozen(t *testing.T) {
	t.Parallel()
	e := mustNew(t, config.Policies{Freezes: []config.Freeze{
		{Name: "weekend", Start: "0 18 * * 5", Duration: "62h", Services: []string{"shop", "billing"}, Actions: []string{"deploy.*", "fix.apply"}},
		{Name: "hourly", Start: "0 * * * *", Duration: "90m", Services: []string{"batch"}},
		{Name: "berlin-evening", Start: "CRON_TZ=Europe/Berlin 0 18 * * *", Duration: "1h", Services: []string{"eu"}},
		{Name: "never", Start: "0 0 30 2 *", Duration: "7d", Services: []string{"ghost"}},
		{Name: "midnight", Start: "@daily", Duration: "1h", Services: []string{"nightly"}},
		{Name: "year-end", Start: "0 0 20 12 *", Duration: "14d"},
		{Name: "long-short", Start: "0 0 24 12 *", Duration: "1h", Services: []string{"shop"}},
	}})
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name          string
		kind, service string
		now           time.Time
		want          string
		until         string
	}{
		{"just before the window", "deploy.gate", "shop", utc("2025-06-13T17:59:59Z"), "", ""},
		{"at the start", "deploy.gate", "shop", utc("2025-06-13T18:00:00Z"), "weekend", "2025-06-16T08:00:00Z"},
		{"in the middle", "fix.apply", "billing", utc("2025-06-15T03:00:00Z"), "weekend", "2025-06-16T08:00:00Z"},
		{"a second before the end", "deploy.gate", "shop", utc("2025-06-16T07:59:59Z"), "weekend", "2025-06-16T08:00:00Z"},
		{"at the end", "deploy.gate", "shop", utc("2025-06-16T08:00:00Z"), "", ""},
		{"midweek", "deploy.gate", "shop", utc("2025-06-11T12:00:00Z"), "", ""},
		{"other service", "deploy.gate", "blog", utc("2025-06-14T12:00:00Z"), "", ""},
		{"other action", "sql.exec", "shop", utc("2025-06-14T12:00:00Z"), "", ""},
		{"now in another zone", "deploy.gate", "shop", utc("2025-06-13T18:30:00Z").In(ny), "weekend", "2025-06-16T08:00:00Z"},
		{"overlapping windows use the latest start", "any.thing", "batch", utc("2025-06-11T12:10:00Z"), "hourly", "2025-06-11T13:30:00Z"},
		{"overlapping windows, between starts", "any.thing", "batch", utc("2025-06-11T12:59:59Z"), "hourly", "2025-06-11T13:30:00Z"},
		{"schedule time zone", "deploy.gate", "eu", utc("2025-06-11T16:30:00Z"), "berlin-evening", "2025-06-11T17:00:00Z"},
		{"schedule time zone, UTC 18:30 is Berlin 20:30", "deploy.gate", "eu", utc("2025-06-11T18:30:00Z"), "", ""},
		{"a start that never comes", "deploy.gate", "ghost", utc("2025-06-11T12:00:00Z"), "", ""},
		{"descriptor", "x", "nightly", utc("2025-06-11T00:30:00Z"), "midnight", "2025-06-11T01:00:00Z"},
		{"empty services and actions cover all", "whatever", "anything", utc("2025-12-31T23:00:00Z"), "year-end", "2026-01-03T00:00:00Z"},
		{"the freeze ending last wins", "deploy.gate", "shop", utc("2025-12-24T00:30:00Z"), "year-end", "2026-01-03T00:00:00Z"},
		{"across the year", "x", "y", utc("2026-01-02T23:59:00Z"), "year-end", "2026-01-03T00:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name, until, ok := e.Frozen(tc.kind, tc.service, tc.now)
			if name != tc.want || ok != (tc.want != "") {
				t.Fatalf("Frozen = %q, %v, %v; want %q", name, until, ok, tc.want)
			}
			if tc.until != "" && !until.Equal(utc(tc.until)) {
				t.Fatalf("until %v, want %s", until, tc.until)
			}
		})
	}
}

func TestPolicyFrozenWithoutFreezes(t *testing.T) {
	t.Parallel()
	if name, until, ok := mustNew(t, config.Policies{}).Frozen("deploy.gate", "shop", t0); ok || name != "" || !until.IsZero() {
		t.Fatalf("Frozen without freezes = %q %v %v", name, until, ok)
	}
}
