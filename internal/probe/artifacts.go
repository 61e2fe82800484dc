package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// ArtifactStore keeps the artifacts of failed runs outside their results.
// *store.Store is one.
type ArtifactStore interface {
	InsertProbeArtifacts(ctx context.Context, arts []store.ProbeArtifact) ([]store.ProbeArtifact, error)
}

var _ ArtifactStore = (*store.Store)(nil)

// artifactWriteTimeout bounds storing the artifacts of one run; it starts
// when the run ends, whose own deadline may have passed.
const artifactWriteTimeout = 10 * time.Second

// ArtifactKind is the store's kind of a: a screenshot, a console log or
// another file.
func ArtifactKind(a Artifact) string {
	switch {
	case strings.HasPrefix(a.ContentType, "image/"):
		return store.ArtifactScreenshot
	case path.Ext(a.Name) == ".log":
		return store.ArtifactConsole
	default:
		return store.ArtifactOther
	}
}

// StoreArtifacts writes the artifacts of res, a run of service's probe
// from location, to st and replaces their data in res by the reference
// (id, size, checksum, truncation). When st fails, the data is dropped
// and each artifact says why, so that a result's details never carry the
// files themselves.
func StoreArtifacts(ctx context.Context, st ArtifactStore, service, location string, res *Result, log *slog.Logger) {
	var arts []store.ProbeArtifact
	var idx []int
	for i, a := range res.Artifacts {
		if a.Data == nil || a.ID != 0 {
			continue
		}
		arts = append(arts, store.ProbeArtifact{Service: service, Probe: res.Probe, Location: location, StartedAt: res.Started,
			Name: a.Name, Kind: ArtifactKind(a), ContentType: a.ContentType, Data: a.Data})
		idx = append(idx, i)
	}
	if len(arts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), artifactWriteTimeout)
	defer cancel()
	stored, err := st.InsertProbeArtifacts(ctx, arts)
	for k, i := range idx {
		a := &res.Artifacts[i]
		if err != nil {
			a.Size, a.Data, a.Error = int64(len(a.Data)), nil, "not stored: the store failed (details in the server log)"
			continue
		}
		a.Data, a.ID, a.Size, a.Truncated, a.SHA256 = nil, stored[k].ID, stored[k].Size, stored[k].Truncated, stored[k].SHA256
	}
	if err != nil && log != nil {
		log.Warn("probe artifacts not stored", "service", service, "probe", res.Probe, "err", err)
	}
}

// storeArtifacts stores the artifacts of a run of the Recorder's jobs when
// its store can hold them.
func (r *Recorder) storeArtifacts(ctx context.Context, service string, res *Result, log *slog.Logger) {
	if st, ok := r.store.(ArtifactStore); ok && len(res.Artifacts) > 0 {
		StoreArtifacts(ctx, st, service, Location, res, log)
	}
}

// StoreDetailArtifacts stores the artifacts carried in the details of a
// stored result (the JSON a Recorder writes, as an agent uploads it) and
// returns the details with only their references. Details without
// artifact data come back unchanged; details that are not a Recorder's
// JSON object are an error.
func StoreDetailArtifacts(ctx context.Context, st ArtifactStore, service, location, detailsJSON string, log *slog.Logger) (string, error) {
	var d map[string]json.RawMessage
	if err := json.Unmarshal([]byte(detailsJSON), &d); err != nil {
		return detailsJSON, fmt.Errorf("details of a %s result from %s: %w", service, location, err)
	}
	raw, ok := d["result"]
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return detailsJSON, nil
	}
	var res Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return detailsJSON, fmt.Errorf("details of a %s result from %s: result: %w", service, location, err)
	}
	pending := false
	for _, a := range res.Artifacts {
		pending = pending || (a.Data != nil && a.ID == 0)
	}
	if !pending {
		return detailsJSON, nil
	}
	StoreArtifacts(ctx, st, service, location, &res, log)
	b, err := json.Marshal(res)
	if err != nil {
		return detailsJSON, fmt.Errorf("encode the result of %s/%s: %w", service, res.Probe, err)
	}
	d["result"] = b
	out, err := json.Marshal(d)
	if err != nil {
		return detailsJSON, fmt.Errorf("encode the details of %s/%s: %w", service, res.Probe, err)
	}
	return string(out), nil
}
