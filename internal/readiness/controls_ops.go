package readiness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

// Operations controls: probes and SLOs, alert channels, the audit log,
// contacts.

// checkProbesSLO: the service's probes report from at least
// probe_locations distinct locations within probe_max_age, an SLO is
// defined, and no SLO has exhausted its error budget.
func checkProbesSLO(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(svc.Probes) == 0 {
		return Result{Status: Fail, Reason: "no probes configured: nothing checks the service from the outside",
			Fix: fmt.Sprintf("add probes under services[%s].probes, from at least %d locations, with an slo (see docs/probes.md)", svc.Name, en.th.ProbeLocations)}, nil
	}
	want := en.th.ProbeLocations
	configured := map[string]bool{}
	sloDefined := svc.SLO.Availability != "" || svc.SLO.Latency.Target != ""
	for _, p := range svc.Probes {
		locs := p.Locations
		if len(locs) == 0 {
			locs = []string{"local"}
		}
		for _, l := range locs {
			configured[l] = true
		}
		if p.SLO.Availability != "" || p.SLO.Latency.Target != "" {
			sloDefined = true
		}
	}
	latest, err := en.e.Store.LatestProbeResults(ctx, svc.Name)
	if err != nil {
		return Result{}, err
	}
	res := Result{}
	seen := map[string]store.ProbeResultRow{}
	for _, r := range latest {
		if en.now.Sub(r.StartedAt) > en.th.ProbeMaxAge {
			continue
		}
		if old, ok := seen[r.Location]; !ok || r.StartedAt.After(old.StartedAt) {
			seen[r.Location] = r
		}
	}
	var locs []string
	for l := range seen {
		locs = append(locs, l)
	}
	slices.Sort(locs)
	for _, l := range locs {
		r := seen[l]
		res.Evidence = append(res.Evidence, Evidence{Kind: "probe", ID: strconv.FormatInt(r.ID, 10), At: r.StartedAt,
			Summary: fmt.Sprintf("probe %s/%s from %s: %s %s ago", svc.Name, r.Probe, l, r.Status, ago(en.now, r.StartedAt)),
			Link:    fmt.Sprintf("/probes/%s/%s", svc.Name, r.Probe)})
	}
	var problems []string
	if len(configured) < want {
		problems = append(problems, fmt.Sprintf("probes configured for %s (%s), want %d", plural(len(configured), "location", "locations"), strings.Join(sortedKeys(configured), ", "), want))
	} else if len(locs) < want {
		problems = append(problems, fmt.Sprintf("results from %d of %d configured locations within %s (%s)", len(locs), len(configured), fmtDuration(en.th.ProbeMaxAge), strings.Join(locs, ", ")))
	}
	if !sloDefined {
		problems = append(problems, "no SLO defined")
	}
	locSummary := fmt.Sprintf("%s reporting from %s (%s)", plural(len(svc.Probes), "probe", "probes"), plural(len(locs), "location", "locations"), strings.Join(locs, ", "))
	if len(problems) > 0 {
		res.Status = Fail
		res.Reason = strings.Join(problems, "; ")
		res.Fix = fmt.Sprintf("run the probes from %d locations (locations: [...] with a steward agent per location) and set slo.availability on the service or its probes", want)
		return res, nil
	}
	if en.e.SLO == nil {
		res.Status = Unknown
		res.Reason = locSummary + ", SLO defined; SLO evaluation not available, so the error budget is unknown"
		res.Fix = "run steward score against the server (--server), which evaluates SLOs"
		return res, nil
	}
	slos, err := en.e.SLO.ServiceSLOs(ctx, svc.Name)
	if err != nil {
		return Result{}, fmt.Errorf("SLO evaluation: %w", err)
	}
	if len(slos) == 0 {
		res.Status = Unknown
		res.Reason = locSummary + "; the SLO evaluator has no data for the service yet"
		res.Fix = "wait for the probes to run for a while, then evaluate again"
		return res, nil
	}
	var exhausted, low, ok []string
	for _, s := range slos {
		name := s.Probe
		if name == "" {
			name = "service"
		}
		if s.Kind != "" {
			name += " " + s.Kind
		}
		desc := fmt.Sprintf("%s %.3f%% of %.3f%% over %s, %.0f%% budget left", name, 100*s.Availability, 100*s.Objective, s.Window, 100*s.BudgetRemaining)
		res.Evidence = append(res.Evidence, Evidence{Kind: "slo", ID: s.Probe, At: en.now, Summary: desc, Link: serviceLink(svc.Name) + "#probes"})
		switch {
		case s.BudgetRemaining <= 0:
			exhausted = append(exhausted, desc)
		case s.BudgetRemaining < 0.25:
			low = append(low, desc)
		default:
			ok = append(ok, desc)
		}
	}
	switch {
	case len(exhausted) > 0:
		res.Status = Fail
		res.Reason = locSummary + "; error budget exhausted: " + strings.Join(exhausted, "; ")
		res.Fix = "stop risky changes until the budget recovers and fix the cause of the failures (see the probe's last failures)"
	case len(low) > 0:
		res.Status = Warn
		res.Reason = locSummary + "; error budget under 25%: " + strings.Join(low, "; ")
		res.Fix = "look at the probe's recent failures before the budget runs out"
	default:
		res.Status = Pass
		res.Reason = locSummary + "; " + strings.Join(ok, "; ")
	}
	return res, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// serviceChannels are the channels the service's alerts can route to:
// every channel when there are no routes, else those of the routes that do
// not name other services.
func serviceChannels(n config.Notify, svc string) []string {
	var all []string
	for _, c := range n.Channels {
		all = append(all, c.Name)
	}
	if len(n.Routes) == 0 {
		return all
	}
	want := map[string]bool{}
	for _, r := range n.Routes {
		if len(r.Match.Service) == 0 || slices.Contains(r.Match.Service, svc) {
			for _, c := range r.Channels {
				want[c] = true
			}
		}
	}
	return slices.DeleteFunc(all, func(c string) bool { return !want[c] })
}

// channelState is the newest delivered and the newest row of a channel.
type channelState struct {
	delivered *store.OutboxRow
	latest    *store.OutboxRow
}

func channelStates(ctx context.Context, en *env, channel string) (channelState, error) {
	v, err := en.memo("outbox:"+channel, func() (any, error) {
		var st channelState
		rows, err := en.e.Store.ListOutbox(ctx, channel, store.OutboxDelivered, 1)
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 {
			st.delivered = &rows[0]
		}
		rows, err = en.e.Store.ListOutbox(ctx, channel, "", 1)
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 {
			st.latest = &rows[0]
		}
		return st, nil
	})
	if err != nil {
		return channelState{}, err
	}
	return v.(channelState), nil
}

// checkAlertChannels: every channel the service's alerts route to
// delivered a message within alert_max_age (a steward notify test counts).
func checkAlertChannels(ctx context.Context, en *env) (Result, error) {
	svc := en.svc
	if len(en.cfg.Notify.Channels) == 0 {
		return Result{Status: Fail, Reason: "no alert channels configured: nobody would hear about a failure",
			Fix: "configure notify.channels (see docs/notify.md) and run steward notify test"}, nil
	}
	chans := serviceChannels(en.cfg.Notify, svc.Name)
	if len(chans) == 0 {
		return Result{Status: Fail, Reason: fmt.Sprintf("no notify route sends %s's alerts to a channel (%s configured)", svc.Name, plural(len(en.cfg.Notify.Channels), "channel", "channels")),
			Fix: fmt.Sprintf("add a route for service %s (or one without a service) under notify.routes", svc.Name)}, nil
	}
	maxAge := en.th.AlertMaxAge
	res := Result{}
	var silent, failing []string
	for _, ch := range chans {
		st, err := channelStates(ctx, en, ch)
		if err != nil {
			return Result{}, err
		}
		if st.delivered == nil || st.delivered.DeliveredAt == nil {
			silent = append(silent, ch+" (never delivered)")
			continue
		}
		d := st.delivered
		ev := Evidence{Kind: "notify", ID: strconv.FormatInt(d.ID, 10), At: *d.DeliveredAt,
			Summary: fmt.Sprintf("channel %s delivered %s %s ago after %s", ch, d.Event, ago(en.now, *d.DeliveredAt), plural(d.Attempts, "attempt", "attempts"))}
		if d.Event == "notify.test" {
			if err := en.auditFor(ctx, &ev, "notify.test", "", "", 0); err != nil {
				return Result{}, err
			}
		}
		res.Evidence = append(res.Evidence, ev)
		if age := en.now.Sub(*d.DeliveredAt); age > maxAge {
			silent = append(silent, fmt.Sprintf("%s (last delivery %s ago)", ch, fmtDuration(age)))
		} else if l := st.latest; l != nil && l.State == store.OutboxFailed && l.ID > d.ID {
			failing = append(failing, fmt.Sprintf("%s (latest message failed: %s)", ch, firstLine(l.LastError)))
		}
	}
	switch {
	case len(silent) > 0:
		res.Status = Fail
		res.Reason = fmt.Sprintf("%d of %s without a delivery in %s: %s", len(silent), plural(len(chans), "channel", "channels"), fmtDuration(maxAge), strings.Join(silent, ", "))
		res.Fix = "run steward notify test (weekly, e.g. from cron) and fix the channels that fail"
	case len(failing) > 0:
		res.Status = Warn
		res.Reason = fmt.Sprintf("%s delivered within %s, but %s", plural(len(chans), "channel", "channels"), fmtDuration(maxAge), strings.Join(failing, ", "))
		res.Fix = "see steward notify status for the error and fix the channel"
	default:
		res.Status = Pass
		res.Reason = fmt.Sprintf("%s (%s) delivered within %s", plural(len(chans), "channel", "channels"), strings.Join(chans, ", "), fmtDuration(maxAge))
	}
	return res, nil
}

// auditState is the audit log's verification and newest checkpoint, read
// once per evaluation.
type auditState struct {
	report     audit.Report
	checkpoint *store.Checkpoint
	sigErr     error
	event      *store.AuditRecord // the audit.checkpoint event the checkpoint covers
}

func readAuditState(ctx context.Context, en *env) (*auditState, error) {
	v, err := en.memo("audit", func() (any, error) {
		st := &auditState{}
		var cps []audit.Checkpoint
		c, err := en.e.Store.LatestCheckpoint(ctx)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			st.checkpoint = &c
			if en.e.Verifier != nil {
				cp, err := audit.ParseCheckpoint([]byte(c.Note), en.e.Verifier)
				if err != nil {
					st.sigErr = err
				} else {
					cps = append(cps, cp)
				}
			}
			evs, err := en.e.Store.ListAudit(ctx, store.AuditFilter{AfterSeq: c.Size - 1, BeforeSeq: c.Size + 1, Limit: 1})
			if err != nil {
				return nil, err
			}
			if len(evs) == 1 {
				st.event = &evs[0]
			}
		}
		st.report, err = en.e.verify(ctx, cps, en.now)
		if err != nil {
			return nil, err
		}
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*auditState), nil
}

// checkAuditLog: the audit log verifies (hash chain and the newest stored
// checkpoint) and a signed checkpoint is at most checkpoint_max_age old.
func checkAuditLog(ctx context.Context, en *env) (Result, error) {
	st, err := readAuditState(ctx, en)
	if err != nil {
		return Result{}, err
	}
	rep := st.report
	res := Result{}
	res.Evidence = append(res.Evidence, Evidence{Kind: "audit", At: en.now, AuditSeq: rep.HeadSeq, AuditHash: rep.HeadHash,
		Summary: fmt.Sprintf("audit log verified: %d events, head %d, %d checkpoints consistent", rep.Events, rep.HeadSeq, rep.Checkpoints), Link: "/audit"})
	if !rep.OK {
		res.Status = Fail
		res.Reason = fmt.Sprintf("audit log does not verify at event %d: %s", rep.FirstBad, rep.Problem)
		res.Evidence[0].Summary = res.Reason
		res.Fix = "stop and investigate: compare with an export and the published checkpoints (steward audit verify --checkpoint FILE); see docs/audit.md"
		return res, nil
	}
	if st.sigErr != nil {
		res.Status = Fail
		res.Reason = fmt.Sprintf("the newest stored checkpoint does not verify: %v", st.sigErr)
		res.Fix = "check that the audit key in data_dir is the one that signed the checkpoints; see docs/audit.md"
		return res, nil
	}
	if st.checkpoint == nil {
		res.Status = Fail
		res.Reason = fmt.Sprintf("audit log verifies (%d events) but no signed checkpoint was ever published", rep.Events)
		res.Fix = "run steward serve (it signs checkpoints on steward.audit.checkpoint_schedule) or steward audit checkpoint"
		return res, nil
	}
	c := st.checkpoint
	cev := Evidence{Kind: "checkpoint", ID: strconv.FormatInt(c.ID, 10), At: c.CreatedAt,
		Summary: fmt.Sprintf("signed checkpoint of %d events, head %s, %s ago", c.Size, shortHash(c.HeadHash), ago(en.now, c.CreatedAt))}
	if st.event != nil {
		setAudit(&cev, *st.event)
	}
	res.Evidence = append(res.Evidence, cev)
	age := en.now.Sub(c.CreatedAt)
	signed := "signed"
	if en.e.Verifier == nil {
		signed = "stored (signature not re-checked: no verifier key)"
	}
	if age > en.th.CheckpointMaxAge {
		res.Status = Fail
		res.Reason = fmt.Sprintf("audit log verifies (%d events), but the newest checkpoint is %s old (max %s)", rep.Events, fmtDuration(age), fmtDuration(en.th.CheckpointMaxAge))
		res.Fix = "make sure steward serve runs (it checkpoints on steward.audit.checkpoint_schedule), or run steward audit checkpoint"
		return res, nil
	}
	res.Status = Pass
	res.Reason = fmt.Sprintf("audit log verifies (%d events); checkpoint of %d events %s %s ago", rep.Events, c.Size, signed, fmtDuration(age))
	return res, nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// checkContacts: on-call and escalation contacts are on file (required),
// and the hosting provider's NOC and SIRT (warn when missing); each needs a
// way to reach it (phone, email or url).
func checkContacts(_ context.Context, en *env) (Result, error) {
	c := en.svc.Contacts
	type entry struct {
		key      string
		contact  config.Contact
		required bool
	}
	entries := []entry{{"oncall", c.Oncall, true}, {"escalation", c.Escalation, true}, {"provider_noc", c.ProviderNOC, false}, {"provider_sirt", c.ProviderSIRT, false}}
	res := Result{}
	var missing, optional, unreachable, have []string
	for _, e := range entries {
		switch {
		case e.contact.IsZero() && e.required:
			missing = append(missing, e.key)
		case e.contact.IsZero():
			optional = append(optional, e.key)
		case e.contact.Phone == "" && e.contact.Email == "" && e.contact.URL == "":
			unreachable = append(unreachable, e.key)
		default:
			have = append(have, e.key)
			var how []string
			for _, v := range []string{e.contact.Phone, e.contact.Email, e.contact.URL} {
				if v != "" {
					how = append(how, v)
				}
			}
			res.Evidence = append(res.Evidence, Evidence{Kind: "config", ID: e.key, At: en.now,
				Summary: fmt.Sprintf("contacts.%s: %s (%s)", e.key, e.contact.Name, strings.Join(how, ", ")), Link: serviceLink(en.svc.Name) + "#contacts"})
		}
	}
	fix := fmt.Sprintf("fill in services[%s].contacts: oncall, escalation, provider_noc and provider_sirt, each with a phone, email or url", en.svc.Name)
	switch {
	case len(missing) > 0:
		res.Status = Fail
		res.Reason = fmt.Sprintf("%d of 4 contacts on file; missing %s", len(have), strings.Join(append(missing, optional...), ", "))
		res.Fix = fix
	case len(optional) > 0 || len(unreachable) > 0:
		res.Status = Warn
		var parts []string
		if len(optional) > 0 {
			parts = append(parts, "missing "+strings.Join(optional, ", "))
		}
		if len(unreachable) > 0 {
			parts = append(parts, "no phone, email or url for "+strings.Join(unreachable, ", "))
		}
		res.Reason = fmt.Sprintf("%d of 4 contacts on file; %s", len(have), strings.Join(parts, "; "))
		res.Fix = fix
	default:
		res.Status = Pass
		res.Reason = "4 of 4 contacts on file with a way to reach them (oncall, escalation, provider NOC, provider SIRT)"
	}
	return res, nil
}

// DefaultVerifyTTL is how long a verification of the audit log is reused.
const DefaultVerifyTTL = time.Minute

// verifiedLog is a verification of the audit log and when it was made.
type verifiedLog struct {
	report audit.Report
	at     time.Time
	cps    int // checkpoints verified against
}

// verify checks the whole audit log against cps, reusing a verification
// younger than VerifyTTL that covered as many checkpoints; a failed
// verification is never reused.
func (e *Evaluator) verify(ctx context.Context, cps []audit.Checkpoint, now time.Time) (audit.Report, error) {
	ttl := e.VerifyTTL
	if ttl == 0 {
		ttl = DefaultVerifyTTL
	}
	e.verifyMu.Lock()
	defer e.verifyMu.Unlock()
	if v := e.verified; v != nil && ttl > 0 && v.report.OK && v.cps == len(cps) && now.Sub(v.at) < ttl && now.Sub(v.at) >= 0 {
		return v.report, nil
	}
	rep, err := audit.Verify(ctx, audit.StoreSource(e.Store), cps)
	if err != nil {
		return audit.Report{}, err
	}
	e.verified = &verifiedLog{report: rep, at: now, cps: len(cps)}
	return rep, nil
}
