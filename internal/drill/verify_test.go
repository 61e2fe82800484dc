package drill

import (
	"strings"
	"testing"
	"time"
)

func TestCheckExpect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expect, value string
		want          bool
		err           bool
	}{
		{"== 0", "0", true, false},
		{"== 0", "3", false, false},
		{"> 1000", "50000", true, false},
		{"> 1000", "999.5", false, false},
		{"value >= 10 && value < 20", "10", true, false},
		{"== 0.5", "0.50", true, false},
		{"== 10", "10.0", true, false}, // numbers compare numerically
		{"== 9007199254740993", "9007199254740993", true, false},
		{"value != ''", "", false, false}, // NULL is ""
		{"value != ''", "abc", true, false},
		{"== 'ok'", "ok", true, false},
		{"startsWith 'steward'", "steward-1", true, false},
		{"in [1, 2, 3]", "2", true, false},
		{"== true", "t", true, false},
		{"== 0", "abc", false, false}, // a string is not 0
		{"value +", "1", false, true},
		{"42", "42", false, true}, // not a boolean
	}
	for _, tt := range tests {
		got, err := CheckExpect(tt.expect, tt.value)
		if (err != nil) != tt.err || (err == nil && got != tt.want) {
			t.Errorf("CheckExpect(%q, %q) = %v, %v; want %v, error %v", tt.expect, tt.value, got, err, tt.want, tt.err)
		}
	}
	if err := ValidateExpect("== 0"); err != nil {
		t.Error(err)
	}
	if err := ValidateExpect("=== 0"); err == nil {
		t.Error("=== 0 validated")
	}
}

func TestCompareRowCounts(t *testing.T) {
	t.Parallel()
	want := map[string]int64{"orders": 1000, "customers": 10}
	if p, s, err := compareRowCounts("exact", want, map[string]int64{"orders": 1000, "customers": 10}); err != nil || len(p) != 0 || !strings.Contains(s, "2 tables, 1010 rows") {
		t.Fatalf("exact equal: %v %q %v", p, s, err)
	}
	p, _, _ := compareRowCounts("exact", want, map[string]int64{"orders": 999, "extra": 1})
	if strings.Join(p, "|") != "customers: missing from the restored copy (manifest: 10 rows)|extra: 1 rows, not in the manifest|orders: 999 rows, manifest 1000" {
		t.Fatalf("exact problems: %q", p)
	}
	if p, _, _ := compareRowCounts("1%", want, map[string]int64{"orders": 991, "customers": 10}); len(p) != 0 {
		t.Fatalf("within 1%%: %v", p)
	}
	if p, _, _ := compareRowCounts("1%", want, map[string]int64{"orders": 980, "customers": 10}); len(p) != 1 {
		t.Fatalf("beyond 1%%: %v", p)
	}
	if _, _, err := compareRowCounts("lots", want, want); err == nil {
		t.Fatal("bad mode accepted")
	}
}

func TestParseFreshness(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, v := range []string{"2026-03-04T05:06:07Z", "2026-03-04T07:06:07+02:00", "2026-03-04 05:06:07", "2026-03-04 05:06:07+00", "1772600767"} {
		got, err := parseFreshness(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseFreshness(%q) = %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"", "yesterday"} {
		if _, err := parseFreshness(v); err == nil {
			t.Errorf("parseFreshness(%q) accepted", v)
		}
	}
}

func TestScratchLabel(t *testing.T) {
	t.Parallel()
	if got := scratchLabel("shop", "weekly", "0badcafe"); got != "steward-drill-shop-weekly-0badcafe" {
		t.Fatalf("label %q", got)
	}
	long := scratchLabel(strings.Repeat("s", 40), strings.Repeat("d", 40), "0badcafe")
	if len(long) != maxLabel || !strings.HasSuffix(long, "-0badcafe") || !strings.HasPrefix(long, LabelPrefix) {
		t.Fatalf("long label %q (%d)", long, len(long))
	}
}
