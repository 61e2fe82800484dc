package policy

import (
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/stewardhq/steward/internal/config"
)

// maxFreezeSteps bounds the schedule steps one Frozen call takes per freeze
// (a window of 64h opened every minute takes 3840).
const maxFreezeSteps = 100_000

// freeze is a compiled change-freeze window.
type freeze struct {
	name     string
	start    string
	sched    cron.Schedule
	dur      time.Duration
	services []string
	actions  []string
}

func compileFreeze(f config.Freeze) (freeze, error) {
	if f.Name == "" {
		return freeze{}, fmt.Errorf("freeze has no name")
	}
	sched, dur, err := f.Window()
	if err != nil {
		return freeze{}, fmt.Errorf("start %q, duration %q: %w", f.Start, f.Duration, err)
	}
	if _, fixed := sched.(cron.ConstantDelaySchedule); fixed {
		// @every has no fixed phase: its "latest start" would move with now.
		return freeze{}, fmt.Errorf("start %q: @every has no fixed start time; use a cron expression like \"0 18 * * 5\"", f.Start)
	}
	return freeze{name: f.Name, start: f.Start, sched: sched, dur: dur, services: f.Services, actions: f.Actions}, nil
}

func (f freeze) applies(kind, service string) bool {
	return (len(f.services) == 0 || slices.Contains(f.services, service)) &&
		(len(f.actions) == 0 || kindMatches(f.actions, kind))
}

// active returns when the window containing now ends, if one does.
//
// A window opens at each start time of the cron schedule and stays open for
// the duration. The window that matters is the one that opened last at or
// before now, so active looks for the latest start s with
// now-duration < s <= now by stepping with Next from now-duration (Next is
// strictly after its argument). Starts have the minute precision of 5-field
// cron; the comparison with now is exact: a window is open from its start,
// inclusive, to start+duration, exclusive. A schedule without a time zone
// (no CRON_TZ= prefix) is read in UTC.
func (f freeze) active(now time.Time) (until time.Time, ok bool) {
	now = now.UTC()
	var last time.Time
	t := now.Add(-f.dur)
	for range maxFreezeSteps {
		next := f.sched.Next(t)
		if next.IsZero() || next.After(now) {
			break
		}
		last, t = next, next
	}
	if last.IsZero() {
		return time.Time{}, false
	}
	until = last.Add(f.dur)
	return until, now.Before(until)
}

// Frozen reports whether a change freeze covering kind on service is active
// at now, and if so its name and when it ends. A freeze with no services or
// no actions covers all of them; actions accept a trailing * as a prefix.
// When several are active, Frozen returns the one that ends last.
func (e *Engine) Frozen(kind, service string, now time.Time) (name string, until time.Time, ok bool) {
	for _, f := range e.freezes {
		if !f.applies(kind, service) {
			continue
		}
		if u, active := f.active(now); active && u.After(until) {
			name, until, ok = f.name, u, true
		}
	}
	return name, until, ok
}
