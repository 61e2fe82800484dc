package dbx

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Engine is one database engine.
type Engine interface {
	// Name is the config's engine name: postgres, mysql or sqlite.
	Name() string
	// ServerVersion reports the version of the server at url.
	ServerVersion(ctx context.Context, url string) (string, error)
	// Dump writes a consistent backup of the database at url into the
	// empty directory dir. Row counts and the freshness value are taken in
	// the same snapshot as the dump where the engine allows it (Dump says).
	Dump(ctx context.Context, url, dir string, opts DumpOptions) (*Dump, error)
	// Restore loads a dump (files under dir) into the empty database at url.
	Restore(ctx context.Context, d *Dump, dir, url string, opts RestoreOptions) (*RestoreReport, error)
	// Scratch provisions an empty database for a drill. Scratch resources
	// carry opts.Label so Leftovers can find them after a crash.
	Scratch(ctx context.Context, opts ScratchOptions) (*Scratch, error)
	// Leftovers destroys scratch resources with the label prefix that are
	// not in keep, returning what it removed.
	Leftovers(ctx context.Context, opts ScratchOptions, keep map[string]bool) ([]string, error)
	// RowCounts returns the number of rows of every user table.
	RowCounts(ctx context.Context, url string) (map[string]int64, error)
	// QueryValue runs a query returning one row with one column and renders
	// the value as text (times in RFC 3339, UTC). NULL is "".
	QueryValue(ctx context.Context, url, query string) (string, error)
}

// DumpOptions tune a dump.
type DumpOptions struct {
	Format    string // postgres: custom (default) or directory
	Jobs      int    // parallel jobs where supported
	Freshness string // optional query for the newest data point
	// Progress, when set, is called with the bytes written so far.
	Progress func(bytes int64)
}

// Dump describes what a dump wrote; it is stored in the backup manifest.
type Dump struct {
	Engine        string           `json:"engine"`
	Format        string           `json:"format"` // custom, directory, sql, sqlite
	Files         []string         `json:"files"`  // relative to the dump directory
	SnapshotTime  time.Time        `json:"snapshot_time"`
	ServerVersion string           `json:"server_version"`
	ToolVersion   string           `json:"tool_version,omitempty"`
	RowCounts     map[string]int64 `json:"row_counts"`
	Freshness     string           `json:"freshness,omitempty"`
	// SameSnapshot tells whether row counts and freshness come from the
	// dump's own snapshot (true) or were read just before it.
	SameSnapshot bool `json:"same_snapshot"`
	// Commands are the exact commands run, for the runbook (no secrets).
	Commands []string `json:"commands"`
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	Jobs     int
	Progress func(bytes int64)
}

// Phase is one timed step of a restore.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration"`
	Bytes    int64         `json:"bytes,omitempty"`
}

// RestoreReport says how a restore went.
type RestoreReport struct {
	Phases      []Phase  `json:"phases"` // e.g. restore data, build indexes/constraints
	Commands    []string `json:"commands"`
	ToolVersion string   `json:"tool_version,omitempty"`
}

// ScratchOptions say where a scratch database goes.
type ScratchOptions struct {
	Kind      string // ephemeral or server
	ServerURL string // server: admin URL of the server hosting scratch databases
	Label     string // unique label, e.g. steward-drill-42-1a2b
	Dir       string // ephemeral: parent directory for throwaway servers and files
}

// Scratch is a provisioned scratch database.
type Scratch struct {
	URL         string
	Label       string
	Description string // for logs and reports, without secrets
	destroy     func(ctx context.Context) error
}

// NewScratch builds a Scratch with its destroy function.
func NewScratch(url, label, desc string, destroy func(ctx context.Context) error) *Scratch {
	return &Scratch{URL: url, Label: label, Description: desc, destroy: destroy}
}

// Destroy removes the scratch database; it is safe to call twice.
func (s *Scratch) Destroy(ctx context.Context) error {
	if s == nil || s.destroy == nil {
		return nil
	}
	d := s.destroy
	s.destroy = nil
	return d(ctx)
}

// ErrUnknownEngine is returned for an engine nobody registered.
var ErrUnknownEngine = errors.New("unknown database engine")

// Registry maps engine names to engines.
type Registry struct{ engines map[string]Engine }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{engines: map[string]Engine{}} }

// Register adds an engine; it panics on a duplicate name.
func (r *Registry) Register(e Engine) {
	if _, dup := r.engines[e.Name()]; dup {
		panic("dbx: engine registered twice: " + e.Name())
	}
	r.engines[e.Name()] = e
}

// Get returns the engine by name.
func (r *Registry) Get(name string) (Engine, error) {
	e, ok := r.engines[name]
	if !ok {
		names := make([]string, 0, len(r.engines))
		for n := range r.engines {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownEngine, name, names)
	}
	return e, nil
}
