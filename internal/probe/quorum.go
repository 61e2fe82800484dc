package probe

import "fmt"

// Verdict is the combined status of one scheduled slot of a probe that runs
// from several locations.
type Verdict struct {
	// Status is Up, Down or Broken (too few locations produced a usable
	// answer to decide).
	Status Status `json:"status"`
	// Up and Down count the locations that answered up and down.
	Up   int `json:"up"`
	Down int `json:"down"`
	// Excluded counts the locations whose result says nothing about the
	// target: error, broken, missed.
	Excluded int `json:"excluded"`
	// Reason explains a broken verdict, and a down one with dissent.
	Reason string `json:"reason,omitempty"`
}

// Quorum combines the results of one scheduled slot, one status per
// location. The target is down when at least quorum locations say so; it
// is up when at least quorum locations gave a usable answer (up or down)
// and fewer than quorum said down. Anything else (error, broken, missed) is
// excluded: a location that cannot reach anything is a broken probe, not a
// down target. With too few usable answers the verdict is broken and does
// not consume error budget. A quorum below 1 is treated as 1.
func Quorum(statuses []Status, quorum int) Verdict {
	if quorum < 1 {
		quorum = 1
	}
	var v Verdict
	for _, s := range statuses {
		switch s {
		case Up:
			v.Up++
		case Down:
			v.Down++
		default:
			v.Excluded++
		}
	}
	switch {
	case v.Down >= quorum:
		v.Status = Down
		if v.Up > 0 {
			v.Reason = fmt.Sprintf("%d of %d locations down, quorum %d", v.Down, len(statuses), quorum)
		}
	case v.Up+v.Down >= quorum:
		v.Status = Up
	default:
		v.Status = Broken
		v.Reason = fmt.Sprintf("%d of %d locations healthy, quorum %d needs %d usable answers (%d up, %d down, %d error/broken/missed)",
			v.Up+v.Down, len(statuses), quorum, quorum, v.Up, v.Down, v.Excluded)
	}
	return v
}
