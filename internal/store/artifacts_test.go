package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

func TestProbeArtifactsRoundTrip(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		started := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
		png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 0xff}, 100)...)
		bigPNG := bytes.Repeat([]byte{0x89}, store.MaxScreenshotBytes+10)
		bigLog := strings.Repeat("console line with a NUL \x00 byte\n", store.MaxConsoleBytes/20)
		arts := []store.ProbeArtifact{
			{Service: "shop", Probe: "login", StartedAt: started, Name: "screenshot.png", Kind: store.ArtifactScreenshot, ContentType: "image/png", Data: png},
			{Service: "shop", Probe: "login", StartedAt: started, Name: "console.log", Kind: store.ArtifactConsole, ContentType: "text/plain; charset=utf-8", Data: []byte(bigLog)},
			{Service: "shop", Probe: "big", Location: "eu", StartedAt: started, Name: "screenshot.png", Kind: store.ArtifactScreenshot, ContentType: "image/png", Data: bigPNG},
		}
		got, err := s.InsertProbeArtifacts(ctx, arts)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].ID == 0 || got[1].ID == 0 || got[0].ID == got[1].ID {
			t.Fatalf("inserted = %+v", got)
		}
		sum := sha256.Sum256(png)
		if got[0].Size != int64(len(png)) || got[0].Truncated || got[0].SHA256 != hex.EncodeToString(sum[:]) || got[0].Location != "local" {
			t.Errorf("screenshot = %+v", got[0])
		}
		// Over the limit: cut, with a note at the end of a text artifact.
		if !got[1].Truncated || got[1].Size != int64(len(bigLog)) || len(got[1].Data) != store.MaxConsoleBytes ||
			!strings.HasSuffix(string(got[1].Data), fmt.Sprintf("[truncated by steward to %d bytes; the original had %d]\n", store.MaxConsoleBytes, len(bigLog))) {
			t.Errorf("console log: truncated %v, size %d, %d bytes kept, ends %q", got[1].Truncated, got[1].Size, len(got[1].Data), got[1].Data[len(got[1].Data)-80:])
		}
		if !got[2].Truncated || len(got[2].Data) != store.MaxScreenshotBytes || got[2].Size != int64(len(bigPNG)) {
			t.Errorf("big screenshot: truncated %v, %d bytes kept, size %d", got[2].Truncated, len(got[2].Data), got[2].Size)
		}

		one, err := s.ProbeArtifact(ctx, got[0].ID)
		if err != nil || !bytes.Equal(one.Data, png) || one.ContentType != "image/png" || one.Kind != store.ArtifactScreenshot ||
			!one.StartedAt.Equal(started) || one.Name != "screenshot.png" || one.CreatedAt.IsZero() {
			t.Fatalf("artifact %d = %+v, %v", got[0].ID, one, err)
		}
		log, err := s.ProbeArtifact(ctx, got[1].ID)
		if err != nil || !bytes.Equal(log.Data, got[1].Data) || !log.Truncated {
			t.Fatalf("console artifact: %d bytes, truncated %v, %v", len(log.Data), log.Truncated, err)
		}
		if _, err := s.ProbeArtifact(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown artifact: %v, want ErrNotFound", err)
		}

		// A retried batch stores nothing twice and returns the first ids.
		again, err := s.InsertProbeArtifacts(ctx, arts[:2])
		if err != nil || again[0].ID != got[0].ID || again[1].ID != got[1].ID {
			t.Fatalf("retry = %+v, %v; want ids %d, %d", again, err, got[0].ID, got[1].ID)
		}
		list, err := s.ListProbeArtifacts(ctx, "shop", "login", time.Time{})
		if err != nil || len(list) != 2 || list[0].Name != "console.log" || list[1].Name != "screenshot.png" || list[0].Data != nil {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if _, err := s.InsertProbeArtifacts(ctx, []store.ProbeArtifact{{Service: "shop", Probe: "login", Name: "x", Kind: "video"}}); err == nil ||
			!strings.Contains(err.Error(), `kind "video"`) {
			t.Errorf("unknown kind: %v", err)
		}
	})
}

// Each probe keeps the artifacts of its newest failures only, and the
// rollup deletes the artifacts of the raw results it folds away.
func TestProbeArtifactsRetention(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		now := time.Now().UTC().Truncate(time.Microsecond)
		base := now.Add(-10 * 24 * time.Hour)
		runs := store.ArtifactsPerProbe + 5
		for i := range runs {
			at := base.Add(time.Duration(i) * 12 * time.Hour)
			var batch []store.ProbeArtifact
			for _, name := range []string{"screenshot.png", "console.log"} {
				kind, ct := store.ArtifactScreenshot, "image/png"
				if name == "console.log" {
					kind, ct = store.ArtifactConsole, "text/plain"
				}
				batch = append(batch, store.ProbeArtifact{Service: "shop", Probe: "login", StartedAt: at, Name: name, Kind: kind, ContentType: ct, Data: []byte(fmt.Sprint(i))})
			}
			if _, err := s.InsertProbeArtifacts(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if err := s.InsertProbeResults(ctx, []store.ProbeResultRow{{Service: "shop", Probe: "login", Status: "down", StartedAt: at, Error: "step 1: boom"}}); err != nil {
				t.Fatal(err)
			}
		}
		// Another probe's artifacts do not count against this one's cap.
		if _, err := s.InsertProbeArtifacts(ctx, []store.ProbeArtifact{{Service: "shop", Probe: "home", StartedAt: base, Name: "console.log", Kind: store.ArtifactConsole, ContentType: "text/plain", Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListProbeArtifacts(ctx, "shop", "login", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2*store.ArtifactsPerProbe {
			t.Fatalf("%d artifacts kept, want %d (the newest %d failures)", len(list), 2*store.ArtifactsPerProbe, store.ArtifactsPerProbe)
		}
		oldest := base.Add(time.Duration(runs-store.ArtifactsPerProbe) * 12 * time.Hour)
		if !list[len(list)-1].StartedAt.Equal(oldest) || !list[0].StartedAt.Equal(base.Add(time.Duration(runs-1)*12*time.Hour)) {
			t.Errorf("kept runs %s to %s, want %s to the newest", list[len(list)-1].StartedAt, list[0].StartedAt, oldest)
		}
		fails, err := s.ListProbeFailures(ctx, "shop", "login", 5)
		if err != nil || len(fails) != 5 || !fails[0].StartedAt.Equal(list[0].StartedAt) {
			t.Fatalf("failures = %+v, %v", fails, err)
		}

		// Raw results older than 7 days go, and their artifacts with them.
		c, err := s.RollupProbeResults(ctx, now, 7*24*time.Hour, 30*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cut := now.Add(-7 * 24 * time.Hour).Truncate(time.Minute)
		list, err = s.ListProbeArtifacts(ctx, "shop", "login", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var want int
		for i := runs - store.ArtifactsPerProbe; i < runs; i++ {
			if !base.Add(time.Duration(i) * 12 * time.Hour).Before(cut) {
				want += 2
			}
		}
		if len(list) != want || c.Artifacts != int64(2*store.ArtifactsPerProbe-want+1) {
			t.Fatalf("after the rollup: %d artifacts, want %d; %d deleted", len(list), want, c.Artifacts)
		}
		for _, a := range list {
			if a.StartedAt.Before(cut) {
				t.Errorf("artifact of %s kept after the rollup (cut %s)", a.StartedAt, cut)
			}
		}
	})
}

func TestProbeDailyAvailability(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		now := time.Now().UTC()
		today := now.Truncate(24 * time.Hour)
		old := today.Add(-20 * 24 * time.Hour).Add(time.Hour)
		var rows []store.ProbeResultRow
		for i, st := range []string{"up", "up", "down", "missed", "error"} {
			rows = append(rows, store.ProbeResultRow{Service: "shop", Probe: "home", Status: st, StartedAt: old.Add(time.Duration(i) * time.Minute)})
		}
		rows = append(rows,
			store.ProbeResultRow{Service: "shop", Probe: "home", Status: "up", StartedAt: today.Add(time.Minute)},
			store.ProbeResultRow{Service: "blog", Probe: "home", Status: "up", StartedAt: today.Add(time.Minute)},
			store.ProbeResultRow{Service: "shop", Probe: "home", Status: "up", StartedAt: today.Add(-100 * 24 * time.Hour)})
		if err := s.InsertProbeResults(ctx, rows); err != nil {
			t.Fatal(err)
		}
		// Fold the old day into the rollups; today's stays raw.
		if _, err := s.RollupProbeResults(ctx, now, 7*24*time.Hour, 8*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		days, err := s.ProbeDailyAvailability(ctx, []string{"shop"}, today.Add(-89*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := []store.ProbeDay{
			{Service: "shop", Probe: "home", Day: old.Truncate(24 * time.Hour), Runs: 4, Up: 2},
			{Service: "shop", Probe: "home", Day: today, Runs: 1, Up: 1},
		}
		if len(days) != len(want) {
			t.Fatalf("days = %+v, want %+v", days, want)
		}
		for i := range want {
			if days[i] != want[i] {
				t.Errorf("day %d = %+v, want %+v", i, days[i], want[i])
			}
		}
		if none, err := s.ProbeDailyAvailability(ctx, nil, today); err != nil || none != nil {
			t.Errorf("no services: %+v, %v", none, err)
		}
	})
}
