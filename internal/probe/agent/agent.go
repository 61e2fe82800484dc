package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/probe"
	"github.com/stewardhq/steward/internal/probe/sched"
	"github.com/stewardhq/steward/internal/server"
	"github.com/stewardhq/steward/internal/store"
)

// Defaults of Options.
const (
	DefaultUploadBatch = 1000
	// maxUploadBytes bounds the results of one upload (the server takes
	// up to server.MaxAgentBody).
	maxUploadBytes = 8 << 20
	// assignmentsFile caches the last assignments in the data directory,
	// so an agent restarted during a server outage keeps probing.
	assignmentsFile = "assignments.json"
)

// Options configure an agent.
type Options struct {
	// Server is the base URL of `steward serve`, Token an API token of a
	// user holding the probe.agent permission.
	Server string
	Token  string
	// Location names where the agent runs; probes list it in locations.
	Location string
	// DataDir holds the spool and the cached assignments.
	DataDir string
	// SelfCheck are targets (http(s) URLs or host:port) the agent must
	// reach to trust its results. Empty: the server itself.
	SelfCheck []string
	// PollInterval is how often assignments are fetched and a heartbeat
	// sent (default probe.DefaultPollInterval).
	PollInterval time.Duration
	// SpoolMaxResults and SpoolMaxBytes bound the spool (defaults 100,000
	// results and 64 MiB).
	SpoolMaxResults int
	SpoolMaxBytes   int64
	// UploadBatch is the most results per upload (default 1000, at most
	// server.MaxAgentBatch).
	UploadBatch int
	// Version is reported in heartbeats.
	Version string
	Logger  *slog.Logger
	// HTTPClient talks to the server and the self-check URLs; nil: one
	// with a 30s timeout.
	HTTPClient *http.Client
	// Grace is how long runs in progress may take at shutdown (default 10s).
	Grace time.Duration
}

// Summary is what an agent did, reported when it stops.
type Summary struct {
	Location string `json:"location"`
	Results  int64  `json:"results"`  // results recorded (runs and misses)
	Broken   int64  `json:"broken"`   // of which recorded as broken
	Sent     int64  `json:"sent"`     // results the server acknowledged
	Buffered int    `json:"buffered"` // results left in the spool, uploaded on the next start
	Dropped  int64  `json:"dropped"`  // results dropped (spool full, refused by the server)
}

var locationRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-_]{0,62}$`)

// Validate checks the options and fills defaults.
func (o *Options) Validate() error {
	var errs []error
	u, err := url.Parse(o.Server)
	switch {
	case o.Server == "":
		errs = append(errs, errors.New("no server: pass --server URL (or STEWARD_SERVER), the address of `steward serve`"))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("--server %q: want an http:// or https:// URL, like https://steward.example.com", o.Server))
	}
	if o.Token == "" {
		errs = append(errs, errors.New("no token: pass --token (or STEWARD_TOKEN), a token of a user whose role has the probe.agent permission"))
	}
	switch {
	case o.Location == "":
		errs = append(errs, errors.New("no location: pass --location NAME, as listed in the probes' locations in steward.yaml"))
	case o.Location == config.LocalLocation:
		errs = append(errs, errors.New("--location local is the server itself; give the agent's location another name"))
	case !locationRE.MatchString(o.Location):
		errs = append(errs, fmt.Errorf("--location %q: use lowercase letters, digits, '-' and '_', starting with a letter or digit", o.Location))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("no data directory: pass --data-dir DIR for the spool"))
	}
	if _, err := parseTargets(o.SelfCheck); err != nil {
		errs = append(errs, err)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = probe.DefaultPollInterval
	}
	if o.UploadBatch <= 0 {
		o.UploadBatch = DefaultUploadBatch
	}
	o.UploadBatch = min(o.UploadBatch, server.MaxAgentBatch)
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	o.Server = strings.TrimSuffix(o.Server, "/")
	return errors.Join(errs...)
}

// Agent runs the probes of one location.
type Agent struct {
	opts    Options
	log     *slog.Logger
	client  *client
	spool   *Spool
	targets []checkTarget
	sched   *sched.Scheduler
	rec     *probe.Recorder
	popts   probe.Options

	wake chan struct{} // capacity 1: new results in the spool
	back chan struct{} // capacity 1: the server answers again

	etag    string
	results atomic.Int64
	broken  atomic.Int64
	sent    atomic.Int64

	mu          sync.Mutex
	health      health
	unreachable bool // the last call to the server failed
}

// health is the last self-check.
type health struct {
	at     time.Time
	ok     bool
	reason string
}

// Run runs the agent until ctx is done, then flushes what it can and
// returns the summary. It returns early with an error wrapping ErrAuth when
// the server refuses the token.
func Run(ctx context.Context, opts Options) (Summary, error) {
	if err := opts.Validate(); err != nil {
		return Summary{Location: opts.Location}, err
	}
	a := &Agent{opts: opts, log: opts.Logger.With("location", opts.Location), wake: make(chan struct{}, 1), back: make(chan struct{}, 1),
		client: &client{base: opts.Server, token: opts.Token, hc: opts.HTTPClient}}
	a.targets, _ = parseTargets(opts.SelfCheck)
	lock, err := lockDir(opts.DataDir)
	if err != nil {
		return Summary{Location: opts.Location}, err
	}
	defer lock.Close()
	if a.spool, err = OpenSpool(filepath.Join(opts.DataDir, "spool"), opts.SpoolMaxResults, opts.SpoolMaxBytes, a.log); err != nil {
		return Summary{Location: opts.Location}, err
	}
	defer a.spool.Close()
	if a.rec, err = probe.NewRecorder(spoolStore{a}, nil); err != nil {
		return a.summary(), err
	}
	if a.sched, err = sched.New(sched.Options{Sink: a.rec, Logger: a.log.With("component", "scheduler"), FlushInterval: time.Second}); err != nil {
		return a.summary(), err
	}
	a.popts = probe.Options{Logger: a.log, BrowserPool: probe.NewBrowserPool(0, "")}

	// The first poll says whether the token works: a refusal ends here.
	first, err := a.poll(ctx)
	if errors.Is(err, ErrAuth) {
		return a.summary(), err
	}
	if !first {
		if cached, cerr := a.loadCached(); cerr == nil {
			a.log.Warn("no assignments from the server at start; running the last ones it sent, buffering results", "probes", len(cached.Probes), "version", cached.Version, "err", err)
			if uerr := a.apply(cached); uerr != nil {
				a.log.Error("cached assignments not usable", "err", uerr)
			}
		} else {
			a.log.Warn("no assignments from the server at start and none cached; retrying", "err", err)
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	if err := a.sched.Start(runCtx); err != nil {
		return a.summary(), err
	}
	a.log.Info("agent started", "server", opts.Server, "data_dir", opts.DataDir, "buffered", a.spool.Pending(), "poll_interval", opts.PollInterval.String())

	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	fatal := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.pollLoop(loopCtx); err != nil {
			fatal <- err
		}
	})
	wg.Go(func() {
		if err := a.uploadLoop(loopCtx); err != nil {
			fatal <- err
		}
	})
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-fatal:
	}
	stopLoops()
	wg.Wait()

	// Let runs in progress finish and spool every record, then try once to
	// upload what is left.
	stopCtx, cancelStop := context.WithTimeout(context.Background(), opts.Grace)
	if err := a.sched.Stop(stopCtx); err != nil {
		a.log.Error("stop probes", "err", err)
	}
	cancelStop()
	cancel()
	if runErr == nil {
		flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.drain(flushCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			a.log.Warn("final upload incomplete; the rest stays in the spool for the next start", "err", err)
		}
		a.sendHeartbeat(flushCtx)
		cancelFlush()
	}
	sum := a.summary()
	a.log.Info("agent stopped", "results", sum.Results, "broken", sum.Broken, "sent", sum.Sent, "buffered", sum.Buffered, "dropped", sum.Dropped)
	return sum, runErr
}

func (a *Agent) summary() Summary {
	s := Summary{Location: a.opts.Location, Results: a.results.Load(), Broken: a.broken.Load(), Sent: a.sent.Load()}
	if a.spool != nil {
		s.Buffered, s.Dropped = a.spool.Pending(), a.spool.Dropped()
	}
	return s
}

// backoff returns the delay before retry n (0-based) after a failure:
// doubling from a second, at most 4 poll intervals.
func (a *Agent) backoff(n int) time.Duration {
	d := time.Second << min(n, 20)
	return min(d, 4*a.opts.PollInterval)
}

func (a *Agent) pollLoop(ctx context.Context) error {
	failures := 0
	for {
		delay := a.opts.PollInterval
		if failures > 0 {
			delay = a.backoff(failures - 1)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		ok, err := a.poll(ctx)
		switch {
		case errors.Is(err, ErrAuth):
			return err
		case ok:
			failures = 0
		case ctx.Err() != nil:
			return nil
		default:
			failures++
			if errors.Is(err, errUnreachable) {
				a.log.Debug("poll failed", "retry_in", a.backoff(failures-1), "err", err)
			} else {
				a.log.Warn("the server refused the heartbeat or the assignments request; retrying", "retry_in", a.backoff(failures-1), "err", err)
			}
		}
	}
}

// poll sends a heartbeat and fetches the assignments when they changed. ok
// says whether the server answered.
func (a *Agent) poll(ctx context.Context) (ok bool, err error) {
	if err := a.sendHeartbeat(ctx); err != nil {
		return false, err
	}
	as, etag, notModified, err := a.client.assignments(ctx, a.opts.Location, a.etag)
	if err != nil {
		a.noteServer(err)
		return false, err
	}
	a.noteServer(nil)
	if notModified {
		return true, nil
	}
	if err := a.apply(as); err != nil {
		a.log.Error("assignments not applied; keeping the previous ones", "version", as.Version, "err", err)
		return true, nil
	}
	a.etag = etag
	a.saveCached(as)
	return true, nil
}

// sendHeartbeat reports the location's health; it runs the self-check.
func (a *Agent) sendHeartbeat(ctx context.Context) error {
	h := a.selfCheck(ctx, true)
	hb := server.AgentHeartbeat{Location: a.opts.Location, Version: a.opts.Version, Healthy: h.ok, Reason: h.reason,
		Buffered: int64(a.spool.Pending()), Dropped: a.spool.Dropped(), PollIntervalMS: a.opts.PollInterval.Milliseconds()}
	ans, err := a.client.heartbeat(ctx, hb)
	if err != nil {
		a.noteServer(err)
		return err
	}
	a.noteServer(nil)
	if ans.Registered {
		a.log.Info("location registered with the server", "assigned", ans.Assigned)
	}
	if ans.Message != "" {
		a.log.Warn("the server assigns no probe to this location", "message", ans.Message)
	}
	return nil
}

// apply schedules the assigned probes.
func (a *Agent) apply(as server.AgentAssignments) error {
	cfg := &config.Config{}
	idx := map[string]int{}
	for _, p := range as.Probes {
		i, ok := idx[p.Service]
		if !ok {
			i = len(cfg.Services)
			idx[p.Service] = i
			cfg.Services = append(cfg.Services, config.Service{Name: p.Service})
		}
		cfg.Services[i].Probes = append(cfg.Services[i].Probes, p.Definition)
	}
	ch, err := a.sched.Update(a.rec.Jobs(cfg, a.popts))
	if err != nil {
		return err
	}
	a.log.Info("assignments updated", "version", as.Version, "probes", len(as.Probes), "added", len(ch.Added), "changed", len(ch.Changed), "removed", len(ch.Removed))
	for _, r := range as.Refused {
		a.log.Warn("probe assigned but not sent by the server", "service", r.Service, "probe", r.Probe, "reason", r.Reason)
	}
	if len(as.Probes) == 0 && as.Message != "" {
		a.log.Warn("the server assigns no probe to this location", "message", as.Message)
	}
	return nil
}

func (a *Agent) cachePath() string { return filepath.Join(a.opts.DataDir, assignmentsFile) }

func (a *Agent) saveCached(as server.AgentAssignments) {
	b, err := json.Marshal(as)
	if err == nil {
		tmp := a.cachePath() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, a.cachePath())
		}
	}
	if err != nil {
		a.log.Warn("cache assignments", "err", err)
	}
}

func (a *Agent) loadCached() (server.AgentAssignments, error) {
	var as server.AgentAssignments
	b, err := os.ReadFile(a.cachePath())
	if err != nil {
		return as, err
	}
	if err := json.Unmarshal(b, &as); err != nil {
		return as, err
	}
	if as.Location != a.opts.Location {
		return as, fmt.Errorf("cached assignments are for location %s", as.Location)
	}
	return as, nil
}

// noteServer logs the transitions between reaching the server and not.
func (a *Agent) noteServer(err error) {
	down := err != nil && errors.Is(err, errUnreachable)
	a.mu.Lock()
	was := a.unreachable
	a.unreachable = down
	a.mu.Unlock()
	switch {
	case down && !was:
		a.log.Warn("server unreachable; probing goes on and results are buffered on disk", "buffered", a.spool.Pending(), "err", err)
	case !down && was && err == nil:
		a.log.Info("server reachable again; uploading the buffered results, oldest first", "buffered", a.spool.Pending())
		select {
		case a.back <- struct{}{}:
		default:
		}
	}
}

func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// selfCheck returns the location's health, checking again when the last
// check is older than a second (or always with fresh).
func (a *Agent) selfCheck(ctx context.Context, fresh bool) health {
	a.mu.Lock()
	h := a.health
	a.mu.Unlock()
	if !fresh && !h.at.IsZero() && time.Since(h.at) < time.Second {
		return h
	}
	var err error
	if len(a.targets) == 0 {
		err = checkAll(ctx, a.opts.HTTPClient, []checkTarget{{raw: a.opts.Server + "/healthz", url: mustURL(a.opts.Server + "/healthz")}})
	} else {
		err = checkAll(ctx, a.opts.HTTPClient, a.targets)
	}
	nh := health{at: time.Now(), ok: err == nil}
	if err != nil {
		nh.reason = "self-check: " + err.Error()
	}
	a.mu.Lock()
	prev := a.health
	a.health = nh
	a.mu.Unlock()
	switch {
	case !nh.ok && (prev.ok || prev.at.IsZero()):
		a.log.Warn("location unhealthy: its down and error results are recorded as broken until the self-check passes", "reason", nh.reason)
	case nh.ok && !prev.ok && !prev.at.IsZero():
		a.log.Info("location healthy again: self-check passes")
	}
	return nh
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// spoolStore is the Recorder's store: it turns each batch of records into
// uploaded results, judged by the self-check, and spools them.
type spoolStore struct{ a *Agent }

var _ probe.ResultStore = spoolStore{}

func (s spoolStore) InsertProbeResults(ctx context.Context, rows []store.ProbeResultRow) error {
	a := s.a
	h := a.selfCheck(ctx, false)
	out := make([]server.AgentResult, 0, len(rows))
	broken := 0
	for _, r := range rows {
		status, reason := r.Status, r.Error
		if !h.ok && (status == string(probe.Down) || status == string(probe.Error)) {
			status = string(probe.Broken)
			reason = fmt.Sprintf("location %s could not probe (%s); the run said: %s", a.opts.Location, h.reason, r.Error)
			broken++
		}
		out = append(out, server.AgentResult{UID: newUID(a.opts.Location), Service: r.Service, Probe: r.Probe, Status: status,
			StartedAt: r.StartedAt, DurationMS: r.DurationMS, Code: r.Code, Error: reason, Details: json.RawMessage(r.Details)})
	}
	if err := a.spool.Append(out); err != nil {
		return err
	}
	a.results.Add(int64(len(out)))
	a.broken.Add(int64(broken))
	a.poke()
	return nil
}

// newUID names a result: the location and 128 random bits.
func newUID(location string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return location + ":" + hex.EncodeToString(b[:])
}

// uploadLoop uploads the spool whenever it has results, backing off while
// the server is unreachable.
func (a *Agent) uploadLoop(ctx context.Context) error {
	failures := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if failures > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(a.backoff(failures - 1)):
			case <-a.back:
				// The poller saw the server come back.
			}
		}
		err := a.drain(ctx)
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, ErrAuth):
			return err
		case ctx.Err() != nil:
			return nil
		default:
			failures++
			a.noteServer(err)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-tick.C:
		}
	}
}

// drain uploads the spool until it is empty, oldest first.
func (a *Agent) drain(ctx context.Context) error {
	batch := a.opts.UploadBatch
	for {
		results, mark, err := a.spool.Peek(batch, maxUploadBytes)
		if err != nil {
			return err
		}
		if len(results) == 0 {
			return a.spool.Ack(mark) // skips damaged lines, if any
		}
		ans, err := a.client.upload(ctx, a.opts.Location, results)
		var rej *RejectedError
		switch {
		case err == nil:
		case errors.As(err, &rej):
			if ans, err = a.uploadAccepted(ctx, results, rej); err != nil {
				return err
			}
		case errors.Is(err, errTooLarge) && batch > 1:
			batch = max(1, batch/2)
			a.log.Warn("upload too large for the server; halving the batch", "batch", batch)
			continue
		case errors.Is(err, errTooLarge):
			a.log.Error("the server refuses a single result as too large; dropping it", "uid", results[0].UID, "service", results[0].Service, "probe", results[0].Probe)
			a.spool.AddDropped(1)
		default:
			return err
		}
		if err := a.spool.Ack(mark); err != nil {
			return err
		}
		a.noteServer(nil)
		a.sent.Add(int64(ans.Stored + ans.Duplicates))
		a.log.Debug("uploaded results", "results", len(results), "stored", ans.Stored, "duplicates", ans.Duplicates, "buffered", a.spool.Pending())
	}
}

// uploadAccepted sends a refused batch again without the results the
// server named, which are dropped: the server will never take them (a
// probe removed from the location since it ran).
func (a *Agent) uploadAccepted(ctx context.Context, results []server.AgentResult, rej *RejectedError) (server.AgentResultsAnswer, error) {
	if len(rej.Rejected) == 0 {
		a.log.Error("the server refused a batch of results without naming them; dropping the batch", "results", len(results), "err", rej.Message)
		a.spool.AddDropped(len(results))
		return server.AgentResultsAnswer{}, nil
	}
	bad := map[int]bool{}
	for _, r := range rej.Rejected {
		bad[r.Index] = true
		a.log.Warn("the server refused a result; dropping it", "uid", r.UID, "reason", r.Error)
	}
	a.spool.AddDropped(len(bad))
	var rest []server.AgentResult
	for i, r := range results {
		if !bad[i] {
			rest = append(rest, r)
		}
	}
	if len(rest) == 0 {
		return server.AgentResultsAnswer{}, nil
	}
	ans, err := a.client.upload(ctx, a.opts.Location, rest)
	if errors.As(err, &rej) {
		a.log.Error("the server refused the rest of a batch too; dropping it", "results", len(rest), "err", rej.Message)
		a.spool.AddDropped(len(rest))
		return server.AgentResultsAnswer{}, nil
	}
	return ans, err
}
