package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/store"
)

const (
	// defaultFailures is how many recent failures the API lists by default;
	// the store keeps the artifacts of as many.
	defaultFailures = store.ArtifactsPerProbe
	maxFailures     = 100
	// pageFailures is how many failures the probe page shows.
	pageFailures = 5
	// consoleShown bounds the console log shown inline on the probe page;
	// the whole log is one click away.
	consoleShown = 16 << 10
)

// probeFailureRoutes registers the failures API, the artifact download and
// the probe page's "Recent failures" fragment.
func (s *Server) probeFailureRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/probes/{service}/{probe}/failures", s.api(auth.PermRead, s.apiProbeFailures))
	mux.Handle("GET /api/v1/probes/artifacts/{id}", s.api(auth.PermRead, s.apiProbeArtifact))
	mux.Handle("GET /probes/{service}/{probe}/failures", s.ui(auth.PermRead, s.probeFailuresPage))
	mux.Handle("GET /probes/{service}/{probe}/slo", s.ui(auth.PermRead, s.probeSLOFragment))
}

// stepJSON is one step of a failed run, as stored.
type stepJSON struct {
	Name       string `json:"name"`
	Cleanup    bool   `json:"cleanup,omitempty"`
	Status     string `json:"status"`
	URL        string `json:"url,omitempty"`
	Code       int    `json:"code,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// artifactJSON is a stored artifact of a failed run, with where to get it.
type artifactJSON struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Truncated   bool   `json:"truncated"`
	URL         string `json:"url"`
}

// failureJSON is one failed run (down or error) of a probe.
type failureJSON struct {
	ID         int64          `json:"id"`
	Location   string         `json:"location"`
	Status     string         `json:"status"`
	StartedAt  time.Time      `json:"started_at"`
	DurationMS int64          `json:"duration_ms"`
	Code       int            `json:"code,omitempty"`
	Error      string         `json:"error"`
	FailedStep *stepJSON      `json:"failed_step"`
	Steps      []stepJSON     `json:"steps"`
	Artifacts  []artifactJSON `json:"artifacts"`
}

type failuresJSON struct {
	Service  string        `json:"service"`
	Probe    string        `json:"probe"`
	Failures []failureJSON `json:"failures"`
}

// storedRun is what the failures need of a result's details (see
// probe.Recorder): the run's steps and its artifacts' references.
type storedRun struct {
	Result *struct {
		Steps     []probe.StepResult `json:"steps"`
		Artifacts []probe.Artifact   `json:"artifacts"`
	} `json:"result"`
}

func artifactURL(id int64) string { return "/api/v1/probes/artifacts/" + strconv.FormatInt(id, 10) }

// probeFailures returns the newest failures of p, each with its steps and
// the artifacts the store still holds (the oldest failures' artifacts
// are deleted by the cap and the rollup).
func (s *Server) probeFailures(r *http.Request, p probeConf, limit int) ([]failureJSON, error) {
	ctx := r.Context()
	rows, err := s.store.ListProbeFailures(ctx, p.Service, p.Name, limit)
	if err != nil {
		return nil, err
	}
	out := make([]failureJSON, 0, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	kept, err := s.store.ListProbeArtifacts(ctx, p.Service, p.Name, rows[len(rows)-1].StartedAt.Add(-time.Minute))
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]store.ProbeArtifact, len(kept))
	for _, a := range kept {
		byID[a.ID] = a
	}
	for _, row := range rows {
		f := failureJSON{ID: row.ID, Location: row.Location, Status: row.Status, StartedAt: row.StartedAt, DurationMS: row.DurationMS,
			Code: row.Code, Error: row.Error, Steps: []stepJSON{}, Artifacts: []artifactJSON{}}
		var d storedRun
		if json.Unmarshal([]byte(row.Details), &d) == nil && d.Result != nil {
			for _, st := range d.Result.Steps {
				f.Steps = append(f.Steps, stepJSON{Name: st.Name, Cleanup: st.Cleanup, Status: string(st.Status), URL: st.URL, Code: st.Code,
					DurationMS: st.Duration.Milliseconds(), Error: st.Error})
				if f.FailedStep == nil && !st.Cleanup && st.Status != probe.Up {
					f.FailedStep = &f.Steps[len(f.Steps)-1]
				}
			}
			if f.FailedStep != nil {
				fs := *f.FailedStep // not an alias into Steps, which may grow
				f.FailedStep = &fs
			}
			for _, ref := range d.Result.Artifacts {
				a, ok := byID[ref.ID]
				if ref.ID == 0 || !ok {
					continue
				}
				f.Artifacts = append(f.Artifacts, artifactJSON{ID: a.ID, Name: a.Name, Kind: a.Kind, ContentType: a.ContentType,
					Size: a.Size, Truncated: a.Truncated, URL: artifactURL(a.ID)})
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func (s *Server) apiProbeFailures(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	p, err := s.configuredProbe(r)
	if err != nil {
		return err
	}
	limit := defaultFailures
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxFailures {
			return fmt.Errorf("%w: limit must be an integer from 1 to %d, not %q", errBadRequest, maxFailures, v)
		}
		limit = n
	}
	failures, err := s.probeFailures(r, p, limit)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, failuresJSON{Service: p.Service, Probe: p.Name, Failures: failures})
	return nil
}

// safeContentType is the content type an artifact is served with: the
// stored one when it is an image or text Steward writes, else a download.
// Nothing is ever served as HTML from the server's origin.
func safeContentType(ct string) string {
	base, _, _ := strings.Cut(ct, ";")
	switch strings.TrimSpace(strings.ToLower(base)) {
	case "image/png":
		return "image/png"
	case "image/jpeg":
		return "image/jpeg"
	case "text/plain":
		return "text/plain; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}

func (s *Server) apiProbeArtifact(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return fmt.Errorf("%w: artifact id must be a positive integer, not %q", errBadRequest, v)
	}
	a, err := s.store.ProbeArtifact(r.Context(), id)
	if err != nil {
		return err
	}
	ct := safeContentType(a.ContentType)
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(a.Data)))
	h.Set("X-Content-Type-Options", "nosniff")
	// The file is shown, never run: no script, no plugin, no same origin.
	h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; sandbox")
	disposition := "inline"
	if ct == "application/octet-stream" {
		disposition = "attachment"
	}
	h.Set("Content-Disposition", fmt.Sprintf("%s; filename=%q", disposition, fmt.Sprintf("%s-%s-%d-%s", a.Service, a.Probe, a.ID, a.Name)))
	h.Set("Cache-Control", "private, max-age=3600")
	h.Set("ETag", `"`+a.SHA256+`"`)
	if a.Truncated {
		h.Set("X-Steward-Truncated", fmt.Sprintf("%d of %d bytes kept", len(a.Data), a.Size))
	}
	if r.Header.Get("If-None-Match") == `"`+a.SHA256+`"` {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.Data)
	}
	return nil
}

// failureView is a failure as the probe page shows it.
type failureView struct {
	failureJSON
	Screenshot    *artifactJSON
	Console       *artifactJSON
	ConsoleText   string // the first consoleShown bytes
	ConsoleCut    bool   // ConsoleText is not the whole log
	FailedStepTxt string
}

type failuresData struct {
	Probe    probeConf
	Failures []failureView
	Max      int // how many the section shows at most
}

// probeFailuresPage renders the "Recent failures" section of the probe
// page: the fragment alone for htmx, which loads it into the page, or a
// page of its own for a browser without JavaScript.
func (s *Server) probeFailuresPage(w http.ResponseWriter, r *http.Request, pr auth.Principal) error {
	p, err := s.configuredProbe(r)
	if err != nil {
		return err
	}
	failures, err := s.probeFailures(r, p, pageFailures)
	if err != nil {
		return err
	}
	d := failuresData{Probe: p, Failures: make([]failureView, 0, len(failures)), Max: pageFailures}
	for _, f := range failures {
		v := failureView{failureJSON: f}
		if f.FailedStep != nil {
			v.FailedStepTxt = f.FailedStep.Name
		}
		for i := range f.Artifacts {
			a := &f.Artifacts[i]
			switch {
			case a.Kind == store.ArtifactScreenshot && v.Screenshot == nil:
				v.Screenshot = a
			case a.Kind == store.ArtifactConsole && v.Console == nil:
				v.Console = a
				full, err := s.store.ProbeArtifact(r.Context(), a.ID)
				if err != nil {
					continue // deleted meanwhile: the link says so
				}
				text := full.Data
				if len(text) > consoleShown {
					text, v.ConsoleCut = text[:consoleShown], true
				}
				v.ConsoleText = strings.ToValidUTF8(string(text), "\uFFFD")
			}
		}
		d.Failures = append(d.Failures, v)
	}
	if r.Header.Get("HX-Request") == "true" {
		s.renderTemplate(w, r, http.StatusOK, "failures", "probe_failures", d)
		return nil
	}
	s.render(w, r, http.StatusOK, "failures", page{Title: "Failures of " + p.Service + "/" + p.Name, Nav: "probes", User: pr.User.Name, Data: d})
	return nil
}
