package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of probe artifacts.
const (
	ArtifactScreenshot = "screenshot"
	ArtifactConsole    = "console"
	ArtifactOther      = "other"
)

// Size limits of one stored artifact, by kind; what is larger is cut.
const (
	MaxScreenshotBytes = 2 << 20
	MaxConsoleBytes    = 256 << 10
	MaxOtherBytes      = 1 << 20
)

// ArtifactsPerProbe is how many failed runs of one probe keep their
// artifacts: those of older failures are deleted as newer ones arrive.
const ArtifactsPerProbe = 20

// ArtifactLimit is the most bytes an artifact of kind keeps.
func ArtifactLimit(kind string) int {
	switch kind {
	case ArtifactScreenshot:
		return MaxScreenshotBytes
	case ArtifactConsole:
		return MaxConsoleBytes
	default:
		return MaxOtherBytes
	}
}

// ProbeArtifact is a file kept with a failed probe run. It belongs to the
// result with the same service, probe, location and start. Size is the
// size of the file before truncation; Data holds at most ArtifactLimit
// bytes and SHA256 is of Data as stored.
type ProbeArtifact struct {
	ID          int64
	Service     string
	Probe       string
	Location    string // "local" when empty
	StartedAt   time.Time
	Name        string // screenshot.png, console.log
	Kind        string // ArtifactScreenshot, ArtifactConsole or ArtifactOther
	ContentType string
	Data        []byte // nil in listings
	Size        int64
	Truncated   bool
	SHA256      string
	CreatedAt   time.Time
}

// truncationNote ends a text artifact that was cut.
const truncationNote = "\n[truncated by steward to %d bytes; the original had %d]\n"

// limit cuts a's data to its kind's limit, noting the cut at the end of a
// text artifact, and sets its size and checksum.
func (a *ProbeArtifact) limit() {
	a.Size = int64(len(a.Data))
	limit := ArtifactLimit(a.Kind)
	if len(a.Data) > limit {
		a.Truncated = true
		if strings.HasPrefix(a.ContentType, "text/") {
			note := fmt.Sprintf(truncationNote, limit, len(a.Data))
			keep := limit - len(note)
			a.Data = append(a.Data[:keep:keep], note...)
		} else {
			a.Data = a.Data[:limit:limit]
		}
	}
	sum := sha256.Sum256(a.Data)
	a.SHA256 = hex.EncodeToString(sum[:])
}

const probeArtifactMeta = "id, service, probe, location, started_at, name, kind, content_type, size, truncated, sha256, created_at"

// InsertProbeArtifacts stores artifacts in one transaction and returns
// them with their ids, sizes and checksums, and their data cut to the
// kind's limit. Storing an artifact again (same service, probe, location,
// start and name, as when a batch of results is retried) returns the one
// stored first. Afterwards each probe concerned keeps the artifacts of its
// ArtifactsPerProbe newest failed runs only.
func (s *Store) InsertProbeArtifacts(ctx context.Context, arts []ProbeArtifact) ([]ProbeArtifact, error) {
	if len(arts) == 0 {
		return nil, nil
	}
	fail := func(err error) ([]ProbeArtifact, error) {
		return nil, fmt.Errorf("insert %d probe artifacts: %w", len(arts), err)
	}
	out := make([]ProbeArtifact, len(arts))
	now := FormatTime(time.Now())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck
	type probeKey struct{ service, probe string }
	var probes []probeKey
	for i, a := range arts {
		if a.Location == "" {
			a.Location = "local"
		}
		switch a.Kind {
		case ArtifactScreenshot, ArtifactConsole, ArtifactOther:
		default:
			return fail(fmt.Errorf("artifact %s of %s/%s: kind %q is not %s, %s or %s", a.Name, a.Service, a.Probe, a.Kind,
				ArtifactScreenshot, ArtifactConsole, ArtifactOther))
		}
		a.StartedAt = a.StartedAt.UTC().Truncate(time.Microsecond)
		a.limit()
		started := FormatTime(a.StartedAt)
		if _, err := tx.ExecContext(ctx, s.rebind("INSERT INTO probe_artifacts (service, probe, location, started_at, name, kind, content_type, data, size, truncated, sha256, created_at) "+
			"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (service, probe, location, started_at, name) DO NOTHING"),
			a.Service, a.Probe, a.Location, started, a.Name, a.Kind, a.ContentType, a.Data, a.Size, boolInt(a.Truncated), a.SHA256, now); err != nil {
			return fail(err)
		}
		// The stored row wins over this one: a retry returns the first.
		row := tx.QueryRowContext(ctx, s.rebind("SELECT "+probeArtifactMeta+" FROM probe_artifacts WHERE service = ? AND probe = ? AND location = ? AND started_at = ? AND name = ?"),
			a.Service, a.Probe, a.Location, started, a.Name)
		stored, err := scanProbeArtifact(row, nil)
		if err != nil {
			return fail(err)
		}
		stored.Data = a.Data
		out[i] = stored
		if k := (probeKey{a.Service, a.Probe}); len(probes) == 0 || probes[len(probes)-1] != k {
			probes = append(probes, k)
		}
	}
	for _, p := range probes {
		if _, err := s.capProbeArtifacts(ctx, tx, p.service, p.probe, ArtifactsPerProbe); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return out, nil
}

// capProbeArtifacts deletes the artifacts of one probe but those of its
// keep newest runs.
func (s *Store) capProbeArtifacts(ctx context.Context, tx *sql.Tx, service, probe string, keep int) (int64, error) {
	q := "DELETE FROM probe_artifacts WHERE service = ? AND probe = ? AND started_at < (" +
		"SELECT started_at FROM (SELECT DISTINCT started_at FROM probe_artifacts WHERE service = ? AND probe = ?" +
		fmt.Sprintf(" ORDER BY started_at DESC LIMIT 1 OFFSET %d) newest)", keep-1)
	res, err := tx.ExecContext(ctx, s.rebind(q), service, probe, service, probe)
	if err != nil {
		return 0, fmt.Errorf("keep the artifacts of the %d newest failures of %s/%s: %w", keep, service, probe, err)
	}
	return res.RowsAffected()
}

// scanProbeArtifact reads probeArtifactMeta, and the data into data when
// not nil.
func scanProbeArtifact(sc scanner, data *[]byte) (ProbeArtifact, error) {
	var a ProbeArtifact
	var started, created string
	var truncated int64
	dest := []any{&a.ID, &a.Service, &a.Probe, &a.Location, &started, &a.Name, &a.Kind, &a.ContentType, &a.Size, &truncated, &a.SHA256, &created}
	if data != nil {
		dest = append(dest, data)
	}
	if err := sc.Scan(dest...); err != nil {
		return ProbeArtifact{}, err
	}
	a.Truncated = truncated != 0
	var err error
	if a.StartedAt, err = ParseTime(started); err != nil {
		return ProbeArtifact{}, fmt.Errorf("artifact %d: started_at: %w", a.ID, err)
	}
	if a.CreatedAt, err = ParseTime(created); err != nil {
		return ProbeArtifact{}, fmt.Errorf("artifact %d: created_at: %w", a.ID, err)
	}
	return a, nil
}

// ProbeArtifact returns one artifact with its data, or ErrNotFound.
func (s *Store) ProbeArtifact(ctx context.Context, id int64) (ProbeArtifact, error) {
	var data []byte
	a, err := scanProbeArtifact(s.queryRow(ctx, "SELECT "+probeArtifactMeta+", data FROM probe_artifacts WHERE id = ?", id), &data)
	if errors.Is(err, sql.ErrNoRows) {
		return ProbeArtifact{}, fmt.Errorf("probe artifact %d: %w (it may have been deleted with its old results)", id, ErrNotFound)
	}
	if err != nil {
		return ProbeArtifact{}, fmt.Errorf("probe artifact %d: %w", id, err)
	}
	a.Data = data
	return a, nil
}

// ListProbeArtifacts returns the artifacts of one probe (every location)
// of runs started at or after since, without their data, newest run first
// and by name within a run.
func (s *Store) ListProbeArtifacts(ctx context.Context, service, probe string, since time.Time) ([]ProbeArtifact, error) {
	fail := func(err error) ([]ProbeArtifact, error) {
		return nil, fmt.Errorf("list probe artifacts of %s/%s: %w", service, probe, err)
	}
	rows, err := s.query(ctx, "SELECT "+probeArtifactMeta+" FROM probe_artifacts WHERE service = ? AND probe = ? AND started_at >= ? ORDER BY started_at DESC, location, name",
		service, probe, FormatTime(since.UTC().Truncate(time.Microsecond)))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []ProbeArtifact
	for rows.Next() {
		a, err := scanProbeArtifact(rows, nil)
		if err != nil {
			return fail(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

// ListProbeFailures returns the failed runs (down or error) of one probe,
// newest first; limit defaults to 20 and is at most 1000.
func (s *Store) ListProbeFailures(ctx context.Context, service, probe string, limit int) ([]ProbeResultRow, error) {
	if limit <= 0 {
		limit = ArtifactsPerProbe
	}
	q := "SELECT " + probeResultCols + " FROM probe_results WHERE service = ? AND probe = ? AND status IN ('down', 'error')" +
		fmt.Sprintf(" ORDER BY started_at DESC, id DESC LIMIT %d", min(limit, 1000))
	out, err := s.listProbeResults(ctx, q, service, probe)
	if err != nil {
		return nil, fmt.Errorf("list failures of %s/%s: %w", service, probe, err)
	}
	return out, nil
}

// deleteProbeArtifactsBefore deletes the artifacts of runs started before
// cut (a FormatTime string): the rollup folds their results away.
func (s *Store) deleteProbeArtifactsBefore(ctx context.Context, cut string) (int64, error) {
	res, err := s.exec(ctx, "DELETE FROM probe_artifacts WHERE started_at < ?", cut)
	if err != nil {
		return 0, fmt.Errorf("delete probe artifacts before %s: %w", cut, err)
	}
	return res.RowsAffected()
}
