package slowatch

import (
	"fmt"
	"time"

	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/slo"
)

// savedState is what the evaluator keeps per probe (or per service, for
// its own objectives) in probe_slo_state.
type savedState struct {
	// State is the confirmed state of a probe: up, degraded, down or
	// unknown (no usable check yet).
	State string `json:"state,omitempty"`
	// Since is the check that confirmed State.
	Since time.Time `json:"since,omitzero"`
	// Streak counts consecutive checks disagreeing with State; Pending is
	// the latest of them.
	Streak  int    `json:"streak,omitempty"`
	Pending string `json:"pending,omitempty"`
	// LastSlot is the newest check the state machine has seen, so that a
	// restart does not count a check twice.
	LastSlot time.Time `json:"last_slot,omitzero"`
	// Reason is why the last bad check was bad.
	Reason string `json:"reason,omitempty"`
	// Alerts is the burn-rate alerter's state.
	Alerts []slo.AlertState `json:"alerts,omitempty"`
}

// observe is what one slot says about the probe's state: "" when nothing
// (no quorum of usable answers).
func observe(v verdict, threshold time.Duration) string {
	switch v.V.Status {
	case probe.Down:
		return StateDown
	case probe.Up:
		if v.V.Down > 0 || (threshold > 0 && v.Duration > threshold) {
			return StateDegraded
		}
		return StateUp
	}
	return ""
}

// step feeds the verdicts newer than LastSlot, in order, into the state
// machine: State changes once confirm consecutive checks disagree with it,
// to what the latest of them says. An unknown state becomes up at the first
// up check, and is treated as up otherwise.
func (s *savedState) step(vs []verdict, threshold time.Duration, confirm int) {
	if s.State == "" {
		s.State = StateUnknown
	}
	for _, v := range vs {
		if !v.At.After(s.LastSlot) {
			continue
		}
		s.LastSlot = v.At
		obs := observe(v, threshold)
		if obs == "" {
			continue
		}
		if obs != StateUp {
			s.Reason = reasonOf(v, threshold)
		}
		cur := s.State
		if cur == StateUnknown {
			if obs == StateUp {
				s.State, s.Since, s.Streak, s.Pending = StateUp, v.At, 0, ""
				continue
			}
			cur = StateUp
		}
		if obs == cur {
			s.Streak, s.Pending = 0, ""
			continue
		}
		s.Streak++
		s.Pending = obs
		if s.Streak >= confirm {
			s.State, s.Since, s.Streak, s.Pending = obs, v.At, 0, ""
		}
	}
}

func reasonOf(v verdict, threshold time.Duration) string {
	switch {
	case v.V.Status == probe.Down && v.Error != "":
		if v.V.Reason != "" {
			return v.V.Reason + ": " + v.Error
		}
		return v.Error
	case v.V.Status == probe.Down:
		return v.V.Reason
	case v.V.Down > 0:
		return fmt.Sprintf("%d of %d locations down, fewer than the quorum", v.V.Down, v.V.Up+v.V.Down+v.V.Excluded)
	case threshold > 0 && v.Duration > threshold:
		return "slower than the latency threshold " + threshold.String() + ": " + v.Duration.Round(time.Millisecond).String()
	}
	return ""
}
