package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/store"
)

// A failed browser run scheduled by the Recorder leaves its screenshot and
// console log in the probe_artifacts table, and only their references in
// the stored result's details.
func TestRecorderStoresBrowserArtifacts(t *testing.T) {
	t.Parallel()
	pool := browserPool(t)
	srv := shopSite(t)
	cfg, err := parse(t, fmt.Sprintf(`- name: login
  type: browser
  interval: 1m
  timeout: 30s
  steps:
    - {navigate: "%s/login"}
    - {fill: {selector: "#password", value: "%s"}}
    - {click: "#echo"}
    - {navigate: "%s/broken"}
    - {assert: 'title == "Shop"'}`, srv.URL, passwordRef(t), srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := NewRecorder(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := rec.Jobs(cfg, Options{BrowserPool: pool})[0]
	started := time.Now()
	out := j.Run(ctx)
	if out.Status != string(Down) {
		t.Fatalf("run = %+v, want down", out)
	}
	if err := rec.WriteBatch(ctx, []sched.Record{{Key: j.Key, Started: started, Status: out.Status, Duration: out.Duration, Error: out.Error}}); err != nil {
		t.Fatal(err)
	}

	rows, err := st.ListProbeFailures(ctx, "shop", "login", 0)
	if err != nil || len(rows) != 1 {
		t.Fatalf("failures = %+v, %v", rows, err)
	}
	if strings.Contains(rows[0].Details, `"data"`) || strings.Contains(rows[0].Details, browserSecret) {
		t.Errorf("details hold the artifacts' data or the secret: %.300s", rows[0].Details)
	}
	var d details
	if err := json.Unmarshal([]byte(rows[0].Details), &d); err != nil || d.Result == nil {
		t.Fatalf("details %.300s: %v", rows[0].Details, err)
	}
	kinds := map[string]store.ProbeArtifact{}
	for _, ref := range d.Result.Artifacts {
		if ref.ID == 0 || ref.Size == 0 || len(ref.SHA256) != 64 || ref.Data != nil || ref.Error != "" {
			t.Errorf("reference = %+v, want an id, a size and a checksum only", ref)
			continue
		}
		a, err := st.ProbeArtifact(ctx, ref.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a.Size != ref.Size || a.SHA256 != ref.SHA256 || a.Name != ref.Name || a.Location != Location || a.Probe != "login" {
			t.Errorf("artifact %d = %+v, reference %+v", ref.ID, a, ref)
		}
		kinds[a.Kind] = a
	}
	if shot := kinds[store.ArtifactScreenshot]; !bytes.HasPrefix(shot.Data, []byte("\x89PNG\r\n\x1a\n")) || shot.ContentType != "image/png" {
		t.Errorf("no PNG screenshot stored: %+v", d.Result.Artifacts)
	}
	cons := string(kinds[store.ArtifactConsole].Data)
	if !strings.Contains(cons, "[error] pw=REDACTED") || strings.Contains(cons, browserSecret) {
		t.Errorf("console log = %q, want the echo with the secret redacted", cons)
	}
}

type failingArtifactStore struct{}

func (failingArtifactStore) InsertProbeArtifacts(context.Context, []store.ProbeArtifact) ([]store.ProbeArtifact, error) {
	return nil, errors.New("disk full")
}

// When the store fails, the data is dropped all the same: details never
// carry the files.
func TestStoreArtifactsFailureDropsData(t *testing.T) {
	t.Parallel()
	res := Result{Probe: "login", Started: time.Now(), Artifacts: []Artifact{
		{Name: "screenshot.png", ContentType: "image/png", Data: []byte("png")},
		{Name: "console.log", ContentType: "text/plain; charset=utf-8", Data: []byte("log line\n")},
	}}
	StoreArtifacts(context.Background(), failingArtifactStore{}, "shop", Location, &res, nil)
	for _, a := range res.Artifacts {
		if a.Data != nil || a.ID != 0 || a.Size == 0 || !strings.Contains(a.Error, "not stored") {
			t.Errorf("artifact after a failed store = %+v", a)
		}
	}
	if k := ArtifactKind(res.Artifacts[1]); k != store.ArtifactConsole {
		t.Errorf("kind of console.log = %q", k)
	}
}

// An agent's uploaded details carry the artifacts inline; the server
// stores them and keeps the references, leaving the rest as it was.
func TestStoreDetailArtifacts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "steward.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res := Result{Probe: "login", Type: "browser", Status: Down, Started: time.Now().UTC(), Error: "step 2: boom",
		Artifacts: []Artifact{{Name: "console.log", ContentType: "text/plain; charset=utf-8", Data: []byte("[error] boom\n")}}}
	in, err := json.Marshal(details{Class: "browser", LagMS: 7, Result: &res})
	if err != nil {
		t.Fatal(err)
	}
	out, err := StoreDetailArtifacts(ctx, st, "shop", "eu-1", string(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var d details
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.LagMS != 7 || d.Class != "browser" || d.Result == nil || d.Result.Error != "step 2: boom" {
		t.Fatalf("details = %s, %v", out, err)
	}
	ref := d.Result.Artifacts[0]
	a, err := st.ProbeArtifact(ctx, ref.ID)
	if err != nil || ref.Data != nil || string(a.Data) != "[error] boom\n" || a.Location != "eu-1" || a.Kind != store.ArtifactConsole {
		t.Fatalf("reference %+v, stored %+v, %v", ref, a, err)
	}
	// Stored references and details without a result pass unchanged.
	for _, same := range []string{out, `{"scheduled":"2026-01-01T00:00:00Z"}`, `{"result":null}`} {
		if got, err := StoreDetailArtifacts(ctx, st, "shop", "eu-1", same, nil); err != nil || got != same {
			t.Errorf("StoreDetailArtifacts(%s) = %s, %v", same, got, err)
		}
	}
	if _, err := StoreDetailArtifacts(ctx, st, "shop", "eu-1", `[1]`, nil); err == nil {
		t.Error("details that are not an object: no error")
	}
}
