package probe

import (
	"strings"
	"testing"
)

func TestQuorum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		statuses []Status
		quorum   int
		want     Verdict
		reason   string // substring of Reason; "" means Reason must be empty
	}{
		{"single up", []Status{Up}, 1, Verdict{Status: Up, Up: 1}, ""},
		{"single down", []Status{Down}, 1, Verdict{Status: Down, Down: 1}, ""},
		{"single error is broken", []Status{Error}, 1, Verdict{Status: "broken", Excluded: 1}, "0 of 1 locations healthy"},
		{"quorum 0 acts as 1", []Status{Down}, 0, Verdict{Status: Down, Down: 1}, ""},
		{"2 of 3 all up", []Status{Up, Up, Up}, 2, Verdict{Status: Up, Up: 3}, ""},
		{"2 of 3 one bad location", []Status{Up, Down, Up}, 2, Verdict{Status: Up, Up: 2, Down: 1}, ""},
		{"2 of 3 two down", []Status{Down, Down, Up}, 2, Verdict{Status: Down, Up: 1, Down: 2}, "2 of 3 locations down, quorum 2"},
		{"2 of 3 all down", []Status{Down, Down, Down}, 2, Verdict{Status: Down, Down: 3}, ""},
		{"2 of 3 one broken one up one down", []Status{Up, Down, "broken"}, 2, Verdict{Status: Up, Up: 1, Down: 1, Excluded: 1}, ""},
		{"2 of 3 two excluded", []Status{Up, "missed", Error}, 2, Verdict{Status: "broken", Up: 1, Excluded: 2}, "1 of 3 locations healthy, quorum 2"},
		{"2 of 3 one down two excluded", []Status{Down, "broken", "broken"}, 2, Verdict{Status: "broken", Down: 1, Excluded: 2}, "quorum 2 needs 2"},
		{"no results", nil, 2, Verdict{Status: "broken"}, "0 of 0 locations healthy"},
		{"3 of 5 down wins over up", []Status{Down, Down, Down, Up, Up}, 3, Verdict{Status: Down, Up: 2, Down: 3}, "3 of 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Quorum(tt.statuses, tt.quorum)
			reason := got.Reason
			got.Reason = ""
			if got != tt.want {
				t.Errorf("Quorum(%v, %d) = %+v, want %+v", tt.statuses, tt.quorum, got, tt.want)
			}
			if tt.reason == "" && reason != "" {
				t.Errorf("Reason = %q, want empty", reason)
			}
			if tt.reason != "" && !strings.Contains(reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", reason, tt.reason)
			}
		})
	}
}
