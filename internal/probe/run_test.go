package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/store"
)

func TestJobsMapping(t *testing.T) {
	t.Parallel()
	probes := `- {name: home, type: http, url: "http://127.0.0.1:1/", interval: 1m, timeout: 5s}
- {name: db, type: tcp, address: "127.0.0.1:5432"}`
	cfg, err := parse(t, probes)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs := rec.Jobs(cfg, Options{})
	if len(jobs) != 2 {
		t.Fatalf("jobs = %+v", jobs)
	}
	home, db := jobs[0], jobs[1]
	if home.Key != "shop/home" || home.Interval != time.Minute || home.Timeout != 5*time.Second || home.Class != sched.ClassCheap || len(home.Hash) != 64 || home.Run == nil {
		t.Errorf("home = %+v", home)
	}
	if db.Key != "shop/db" || db.Interval != 30*time.Second || db.Timeout != 10*time.Second {
		t.Errorf("db (defaults) = %+v", db)
	}
	// The scheduler accepts them.
	s, err := sched.New(sched.Options{Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	if ch, err := s.Update(jobs); err != nil || len(ch.Added) != 2 {
		t.Fatalf("update = %+v, %v", ch, err)
	}

	hashes := func(probes string) map[string]string {
		t.Helper()
		cfg, err := parse(t, probes)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, j := range rec.Jobs(cfg, Options{}) {
			out[j.Key] = j.Hash
		}
		return out
	}
	same := hashes(probes)
	if same["shop/home"] != home.Hash || same["shop/db"] != db.Hash {
		t.Errorf("hash of an unchanged definition changed: %v", same)
	}
	changed := hashes(strings.Replace(probes, "127.0.0.1:1/", "127.0.0.1:1/health", 1))
	if changed["shop/home"] == home.Hash {
		t.Error("hash unchanged after the url changed")
	}
	if changed["shop/db"] != db.Hash {
		t.Error("hash of the other probe changed")
	}
	asserted := hashes(strings.Replace(probes, "timeout: 5s}", `timeout: 5s, assert: "status == 200"}`, 1))
	if asserted["shop/home"] == home.Hash {
		t.Error("hash unchanged after an assertion was added")
	}
}

func TestRecorderRunsWritesAndExports(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "no", http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer ts.Close()
	cfg, err := parse(t, fmt.Sprintf(`- {name: home, type: http, url: "%s/"}
- {name: broken, type: http, url: "%s/down"}`, ts.URL, ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewPedanticRegistry()
	rec, err := NewRecorder(st, reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRecorder(st, reg); err == nil || !strings.Contains(err.Error(), "already exports") {
		t.Fatalf("second recorder on one registry: %v", err)
	}
	var recs []sched.Record
	for _, j := range rec.Jobs(cfg, Options{}) {
		started := time.Now()
		out := j.Run(ctx)
		recs = append(recs, sched.Record{Key: j.Key, Class: j.Class, Scheduled: started, Started: started, Status: out.Status, Duration: out.Duration, Error: out.Error})
	}
	recs = append(recs, sched.Record{Key: "shop/home", Class: sched.ClassCheap, Scheduled: time.Now(), Lag: 7 * time.Second, Status: sched.StatusMissed, Error: "pool busy"})
	if err := rec.WriteBatch(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.results); n != 0 {
		t.Errorf("%d keys still hold results after a successful write", n)
	}
	rows, err := st.ListProbeResults(ctx, "shop", "home", time.Time{}, 10)
	if err != nil || len(rows) != 2 {
		t.Fatalf("home rows = %+v, %v", rows, err)
	}
	missed, run := rows[0], rows[1]
	if missed.Status != "missed" || missed.Error != "pool busy" || !strings.Contains(missed.Details, `"lag_ms":7000`) {
		t.Errorf("missed row = %+v", missed)
	}
	var d details
	if run.Status != "up" || run.Code != 200 || run.Location != "local" || json.Unmarshal([]byte(run.Details), &d) != nil || d.Result == nil || d.Result.Phases.Total == 0 {
		t.Errorf("run row = %+v", run)
	}
	latest, err := st.LatestProbeResults(ctx, "shop")
	if err != nil || len(latest) != 2 || latest[0].Probe != "broken" || latest[0].Status != "down" || latest[0].Code != 502 {
		t.Fatalf("latest = %+v, %v", latest, err)
	}

	if v := testutil.ToFloat64(rec.m.success.WithLabelValues("shop", "home")); v != 1 {
		t.Errorf("success of home = %v", v)
	}
	if v := testutil.ToFloat64(rec.m.success.WithLabelValues("shop", "broken")); v != 0 {
		t.Errorf("success of broken = %v", v)
	}
	if n := testutil.CollectAndCount(rec.m.phase); n != 8 {
		t.Errorf("phase series = %d, want 4 per probe", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %+v, %v", problems, err)
	}
	// A probe removed from the config loses its series.
	cfg.Services[0].Probes = cfg.Services[0].Probes[:1]
	rec.Jobs(cfg, Options{})
	if n := testutil.CollectAndCount(rec.m.success); n != 1 {
		t.Errorf("success series after removing a probe = %d, want 1", n)
	}
}

// A failed write keeps the details for the retry of the same batch.
func TestRecorderRetryKeepsDetails(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ts.Close()
	cfg, err := parse(t, fmt.Sprintf(`- {name: home, type: http, url: "%s/"}`, ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakyStore{fail: 1}
	rec, err := NewRecorder(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := rec.Jobs(cfg, Options{})[0]
	var recs []sched.Record
	for range 2 {
		started := time.Now()
		out := j.Run(context.Background())
		recs = append(recs, sched.Record{Key: j.Key, Started: started, Status: out.Status, Duration: out.Duration})
	}
	if err := rec.WriteBatch(context.Background(), recs); err == nil {
		t.Fatal("first write should fail")
	}
	if err := rec.WriteBatch(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if len(fs.rows) != 2 || fs.rows[0].Code != 200 || fs.rows[1].Code != 200 || fs.rows[0].Details == fs.rows[1].Details {
		t.Fatalf("rows after retry = %+v", fs.rows)
	}
}

type flakyStore struct {
	fail int
	rows []store.ProbeResultRow
}

func (f *flakyStore) InsertProbeResults(_ context.Context, rows []store.ProbeResultRow) error {
	if f.fail > 0 {
		f.fail--
		return fmt.Errorf("store unreachable")
	}
	f.rows = append(f.rows, rows...)
	return nil
}
