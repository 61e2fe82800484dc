package readiness_test

import (
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/readiness"
	"github.com/stewardhq/steward/internal/store"
)

func TestWaivers(t *testing.T) {
	t.Parallel()
	b := setup(t, "readiness:\n  waivers:\n    - {service: shop, control: emergency-kit, reason: \"kit drill booked for January\", owner: team-shop, expires: \"2099-01-31\"}\n")
	r := b.result(readiness.CtlEmergencyKit)
	want(t, r, readiness.Pass, "waived until 2099-01-31 by team-shop: kit drill booked for January", "without the waiver: fail")
	if !r.Waived || r.Waiver == nil || r.Waiver.Owner != "team-shop" || r.Waiver.Expires.Format(time.RFC3339) != "2099-01-31T23:59:59Z" {
		t.Fatalf("waiver = %+v, waived %v", r.Waiver, r.Waived)
	}
	ev := r.Evidence[len(r.Evidence)-1]
	if ev.Kind != "waiver" || ev.AuditSeq == 0 {
		t.Fatalf("evidence = %+v, want the waiver with its audit event", r.Evidence)
	}
	events := func(action string) []store.AuditRecord {
		t.Helper()
		evs, err := b.st.ListAudit(b.ctx, store.AuditFilter{Action: action, Target: "waiver:shop/emergency-kit"})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	// Audited once, however often it is evaluated.
	b.results("shop")
	b.results("shop")
	if n := len(events(readiness.EventWaiverAdded)); n != 1 {
		t.Fatalf("%d %s events after 3 evaluations, want 1", n, readiness.EventWaiverAdded)
	}
	// A change of the waiver is audited once.
	b.cfg.Readiness.Waivers[0].Reason = "kit drill moved to February"
	b.results("shop")
	b.results("shop")
	if n := len(events(readiness.EventWaiverChanged)); n != 1 {
		t.Fatalf("%d %s events, want 1", n, readiness.EventWaiverChanged)
	}
	// Expired: a failure naming the date, audited once.
	b.cfg.Readiness.Waivers[0].Expires = b.now.Add(-48 * time.Hour).Format("2006-01-02")
	r = b.result(readiness.CtlEmergencyKit)
	want(t, r, readiness.Fail, "waiver expired on "+b.now.Add(-48*time.Hour).Format("2006-01-02")+" (owner team-shop)")
	if r.Waived {
		t.Fatal("an expired waiver still marks the result waived")
	}
	b.results("shop")
	b.results("shop")
	if n := len(events(readiness.EventWaiverExpired)); n != 1 {
		t.Fatalf("%d %s events, want 1", n, readiness.EventWaiverExpired)
	}
	// added, changed (reason), changed (expiry), expired.
	if n := len(events("readiness.waiver.")); n != 4 {
		t.Fatalf("%d waiver events in all, want 4", n)
	}
	// A waiver of a passing control passes, and says it is not needed.
	b.cfg.Readiness.Waivers[0] = config.Waiver{Service: "shop", Control: "contacts", Reason: "r", Owner: "o", Expires: "2099-01-01"}
	want(t, b.result(readiness.CtlContacts), readiness.Pass, "passes; waiver until 2099-01-01 (owner o) is not needed")
}

func TestScoreFormula(t *testing.T) {
	t.Parallel()
	ctl := func(w float64) readiness.Control { return readiness.Control{Weight: w} }
	results := []readiness.Result{
		{Control: ctl(3), Status: readiness.Pass},
		{Control: ctl(2), Status: readiness.Warn},
		{Control: ctl(1), Status: readiness.Fail},
		{Control: ctl(5), Status: readiness.Unknown}, // excluded
		{Control: ctl(0), Status: readiness.Fail},    // weight 0: excluded
	}
	// (3·1 + 2·0.5 + 1·0) / (3+2+1) = 4/6
	if got := readiness.ServiceScore(results); got != 66.7 {
		t.Fatalf("score = %v, want 66.7", got)
	}
	if got := readiness.ServiceScore([]readiness.Result{{Control: ctl(1), Status: readiness.Unknown}}); got != 0 {
		t.Fatalf("score with nothing evaluable = %v, want 0", got)
	}
	var r config.Readiness
	if readiness.TierWeight(r, 1) != 4 || readiness.TierWeight(r, 4) != 1 {
		t.Fatal("default tier weights are not 4 … 1")
	}
	r.TierWeights = map[string]int{"1": 10}
	r.Weights = map[string]int{"backups": 7}
	if readiness.TierWeight(r, 1) != 10 || readiness.TierWeight(r, 2) != 3 {
		t.Fatal("tier_weights not applied")
	}
	bk, _ := readiness.Lookup("backups")
	ct, _ := readiness.Lookup("contacts")
	if readiness.ControlWeight(r, bk) != 7 || readiness.ControlWeight(r, ct) != ct.Weight {
		t.Fatal("weights not applied")
	}

	// Overall: services weighted by tier.
	b := setup(t, "readiness:\n  weights: {contacts: 5}\n")
	sc, err := b.eval.Evaluate(b.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Services) != 2 {
		t.Fatalf("%d services, want 2", len(sc.Services))
	}
	shop, other := sc.Services[0], sc.Services[1]
	wantOverall := float64(int((4*shop.Score+2*other.Score)/6*10+0.5)) / 10
	if sc.Score != wantOverall {
		t.Fatalf("overall %v, want (4×%v + 2×%v)/6 = %v", sc.Score, shop.Score, other.Score, wantOverall)
	}
	for _, res := range shop.Results {
		if res.Control.ID == "contacts" && res.Control.Weight != 5 {
			t.Fatalf("contacts weight %v, want the configured 5", res.Control.Weight)
		}
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	start := b.now
	for i := range 4 {
		b.now = start.Add(time.Duration(i) * 24 * time.Hour)
		if i == 2 {
			b.backup("nightly", store.BackupSucceeded, b.now.Add(-time.Hour))
		}
		sc, err := b.eval.Evaluate(b.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := readiness.Record(b.ctx, b.st, sc); err != nil {
			t.Fatal(err)
		}
	}
	h, err := readiness.LoadHistory(b.ctx, b.st, "shop", "backups", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Points) != 4 {
		t.Fatalf("%d points, want 4", len(h.Points))
	}
	// fail at the start, pass on day 2, fail again on day 3 (the backup
	// is then 25h old): when did it go red?
	if len(h.Changes) != 3 || h.Changes[0].To != readiness.Fail || h.Changes[1].To != readiness.Pass || h.Changes[2].From != readiness.Pass ||
		h.Changes[2].To != readiness.Fail || !h.Changes[2].At.Equal(start.Add(72*time.Hour)) || h.Current["backups"] != readiness.Fail {
		t.Fatalf("changes = %+v, current %v", h.Changes, h.Current)
	}
	all, err := readiness.LoadHistory(b.ctx, b.st, "shop", "", time.Time{})
	if err != nil || len(all.Changes) < 14 {
		t.Fatalf("history of every control: %d changes, %v; want at least one per control", len(all.Changes), err)
	}
	// Previous: the stored score nearest to 30 days ago.
	b.now = start.Add(30 * 24 * time.Hour)
	sc, err := b.eval.Evaluate(b.ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Services[0].Previous == nil || *sc.Services[0].Previous != h.Points[0].Score || sc.Previous == nil {
		t.Fatalf("previous = %v, want the first stored score %v", sc.Services[0].Previous, h.Points[0].Score)
	}
	b.now = start.Add(60 * 24 * time.Hour)
	sc, err = b.eval.Evaluate(b.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Previous != nil {
		t.Fatalf("previous = %v with no evaluation within a week of 30 days ago", *sc.Previous)
	}
}

func TestConcurrentEvaluationsAuditWaiverOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, "readiness:\n  waivers:\n    - {service: shop, control: contacts, reason: r, owner: o, expires: \"2099-01-01\"}\n")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := b.eval.Evaluate(b.ctx, "")
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	evs, err := b.st.ListAudit(b.ctx, store.AuditFilter{Action: "readiness.waiver.", Target: "waiver:shop/contacts"})
	if err != nil || len(evs) != 1 || evs[0].Action != readiness.EventWaiverAdded {
		t.Fatalf("waiver events after 4 concurrent evaluations: %+v, %v; want one added", evs, err)
	}
}
