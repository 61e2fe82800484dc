package slo

import "slices"

// AlertState is the persistable state of one alert of an Alerter, so that a
// restarted process neither pages again for an alert it already opened nor
// forgets to resolve it.
type AlertState struct {
	Key       string   `json:"key"`
	Objective string   `json:"objective"`
	Severity  Severity `json:"severity"`
	Active    bool     `json:"active"`
	Notified  bool     `json:"notified"`
	Streak    int      `json:"streak"`
	Last      Alert    `json:"last"`
}

// States returns the alerts the Alerter tracks, ordered by key.
func (a *Alerter) States() []AlertState {
	out := make([]AlertState, 0, len(a.states))
	for key, st := range a.states {
		out = append(out, AlertState{Key: key, Objective: st.objective, Severity: st.severity,
			Active: st.active, Notified: st.notified, Streak: st.streak, Last: st.last})
	}
	slices.SortFunc(out, func(x, y AlertState) int {
		switch {
		case x.Key < y.Key:
			return -1
		case x.Key > y.Key:
			return 1
		}
		return 0
	})
	return out
}

// Restore replaces the Alerter's alerts with states, as returned by States.
// A state whose key does not match its objective and severity is keyed by
// them.
func (a *Alerter) Restore(states []AlertState) {
	a.states = make(map[string]*alertState, len(states))
	for _, s := range states {
		a.states[alertKey(s.Objective, s.Severity)] = &alertState{objective: s.Objective, severity: s.Severity,
			active: s.Active, notified: s.Notified, streak: s.Streak, last: s.Last}
	}
}
