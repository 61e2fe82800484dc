package slo

import (
	"fmt"
	"slices"
	"time"
)

// DefaultConfirmations is used when AlerterConfig.Confirmations is zero.
const DefaultConfirmations = 2

// EventKind is what a notification says.
type EventKind string

const (
	// EventOpen: an alert starts.
	EventOpen EventKind = "open"
	// EventResolve: an alert that was opened is over.
	EventResolve EventKind = "resolve"
)

// Event is one notification to send.
type Event struct {
	Kind EventKind
	// Key is the same for the open and the resolve of one alert, so a
	// notify channel can deduplicate and thread them: "slo/<objective>/<severity>".
	Key       string
	Objective string
	Severity  Severity
	// Alert is the strongest firing window when the alert was last seen
	// firing.
	Alert Alert
	At    time.Time
}

// AlerterConfig configures an Alerter.
type AlerterConfig struct {
	// Confirmations is how many consecutive evaluations must agree before
	// an alert changes state; zero means DefaultConfirmations.
	Confirmations int
	// DependsOn maps an objective to the objectives it depends on.
	DependsOn map[string][]string
}

// Observation is the Status of one objective at one evaluation.
type Observation struct {
	Objective string
	Status    Status
}

// Alerter is the alert state machine. Per objective and severity it keeps
// a confirmed state — active once Confirmations consecutive evaluations
// fire, inactive once as many do not — and whether an open was sent.
//
// An active alert is not opened while its objective is Muted or while any
// of its dependencies, direct or transitive, is down (has an active page
// alert); it opens at the first step where neither holds and it is still
// active. A resolve is sent whenever an opened alert becomes inactive,
// muted or not, dependency down or not. Alerter is not safe for
// concurrent use.
type Alerter struct {
	confirm int
	deps    map[string][]string
	states  map[string]*alertState
}

type alertState struct {
	objective string
	severity  Severity
	active    bool
	notified  bool
	streak    int // consecutive evaluations disagreeing with active
	last      Alert
}

// NewAlerter returns an Alerter with no alerts.
func NewAlerter(cfg AlerterConfig) (*Alerter, error) {
	if cfg.Confirmations < 0 {
		return nil, fmt.Errorf("alerter: confirmations %d is negative", cfg.Confirmations)
	}
	confirm := cfg.Confirmations
	if confirm == 0 {
		confirm = DefaultConfirmations
	}
	deps := make(map[string][]string, len(cfg.DependsOn))
	for k, v := range cfg.DependsOn {
		deps[k] = slices.Clone(v)
	}
	return &Alerter{confirm: confirm, deps: deps, states: map[string]*alertState{}}, nil
}

func alertKey(objective string, sev Severity) string {
	return "slo/" + objective + "/" + string(sev)
}

// Down reports whether objective has an active page alert, notified or not.
func (a *Alerter) Down(objective string) bool {
	st := a.states[alertKey(objective, Page)]
	return st != nil && st.active
}

func (a *Alerter) dependencyDown(objective string) bool {
	seen := map[string]bool{objective: true}
	stack := slices.Clone(a.deps[objective])
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[d] {
			continue
		}
		seen[d] = true
		if a.Down(d) {
			return true
		}
		stack = append(stack, a.deps[d]...)
	}
	return false
}

// Step feeds one evaluation of each observed objective and returns the
// events to send, ordered by key. All state changes of the step are
// applied before dependencies are looked at, so the order of obs does not
// matter.
func (a *Alerter) Step(now time.Time, obs []Observation) []Event {
	muted := map[string]bool{}
	var touched []string
	for _, o := range obs {
		muted[o.Objective] = o.Status.Muted
		for _, sev := range []Severity{Page, Ticket} {
			key := alertKey(o.Objective, sev)
			alert, firing := strongest(o.Status.Firing, sev)
			st := a.states[key]
			if st == nil {
				if !firing {
					continue
				}
				st = &alertState{objective: o.Objective, severity: sev}
				a.states[key] = st
			}
			touched = append(touched, key)
			if firing {
				st.last = alert
			}
			if firing == st.active {
				st.streak = 0
				continue
			}
			st.streak++
			if st.streak >= a.confirm {
				st.active, st.streak = firing, 0
			}
		}
	}
	slices.Sort(touched)
	touched = slices.Compact(touched)

	var events []Event
	for _, key := range touched {
		st := a.states[key]
		ev := Event{Key: key, Objective: st.objective, Severity: st.severity, Alert: st.last, At: now}
		switch {
		case st.active && !st.notified && !muted[st.objective] && !a.dependencyDown(st.objective):
			st.notified = true
			ev.Kind = EventOpen
			events = append(events, ev)
		case !st.active && st.notified:
			st.notified = false
			ev.Kind = EventResolve
			events = append(events, ev)
		}
		if !st.active && !st.notified && st.streak == 0 {
			delete(a.states, key)
		}
	}
	return events
}

// strongest returns the firing alert of sev with the highest burn rate.
func strongest(firing []Alert, sev Severity) (Alert, bool) {
	var best Alert
	found := false
	for _, al := range firing {
		if al.Severity == sev && (!found || al.BurnRate > best.BurnRate) {
			best, found = al, true
		}
	}
	return best, found
}
