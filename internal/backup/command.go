package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/dbx"
)

// commandEntry is one line a list command prints.
type commandEntry struct {
	ID   string          `json:"id"`
	Time json.RawMessage `json:"time"`
	Size int64           `json:"size"`
}

// ListCommand runs the backup's list command (sh -c) and turns each JSON
// line it prints, {"id":…,"time":…,"size":…}, into a manifest (oldest
// first). time is RFC 3339 or Unix seconds. The manifests carry no objects:
// FetchCommand fetches them.
func ListCommand(ctx context.Context, b *config.Backup) ([]Manifest, error) {
	if b.List == "" {
		return nil, fmt.Errorf("backup %s has no list command", b.Name)
	}
	out, err := runCommand(ctx, []string{"STEWARD_BACKUP_NAME=" + b.Name}, "sh", "-c", b.List)
	if err != nil {
		return nil, fmt.Errorf("backup %s: list command: %w", b.Name, err)
	}
	var ms []Manifest
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var e commandEntry
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("backup %s: list command output line %d: %v; want {\"id\":…,\"time\":…,\"size\":…}", b.Name, line, err)
		}
		if err := checkSegment("id", e.ID); err != nil {
			return nil, fmt.Errorf("backup %s: list command output line %d: %w", b.Name, line, err)
		}
		t, err := parseEntryTime(e.Time)
		if err != nil {
			return nil, fmt.Errorf("backup %s: list command output line %d: %w", b.Name, line, err)
		}
		ms = append(ms, Manifest{
			ID: e.ID, Backup: b.Name, Database: b.Database, Method: "command", Size: e.Size,
			StartedAt: t, FinishedAt: t, SnapshotTime: t, Commands: []string{b.List},
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("backup %s: list command output: %w", b.Name, err)
	}
	slices.SortFunc(ms, lessManifest)
	return ms, nil
}

func parseEntryTime(raw json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: want RFC 3339 like 2026-01-02T03:04:05Z", s)
		}
		return t.UTC(), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f <= 0 {
		return time.Time{}, fmt.Errorf("time %s: want RFC 3339 text or Unix seconds", string(raw))
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}

// FetchCommand runs the backup's fetch command (sh -c) with
// STEWARD_BACKUP_ID=id and STEWARD_FETCH_DIR=dir, and returns the files it
// wrote there (a dump the engine restores), with the timed fetch phase.
func FetchCommand(ctx context.Context, b *config.Backup, id, dir string) ([]string, dbx.Phase, error) {
	if b.Fetch == "" {
		return nil, dbx.Phase{}, fmt.Errorf("backup %s has no fetch command", b.Name)
	}
	if err := checkSegment("id", id); err != nil {
		return nil, dbx.Phase{}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, dbx.Phase{}, err
	}
	start := time.Now()
	if _, err := runCommand(ctx, []string{"STEWARD_BACKUP_NAME=" + b.Name, "STEWARD_BACKUP_ID=" + id, "STEWARD_FETCH_DIR=" + abs}, "sh", "-c", b.Fetch); err != nil {
		return nil, dbx.Phase{}, fmt.Errorf("backup %s: fetch %s: %w", b.Name, id, err)
	}
	phase := dbx.Phase{Name: PhaseFetch, Duration: time.Since(start)}
	var files []string
	err = filepath.WalkDir(abs, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			phase.Bytes += info.Size()
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, dbx.Phase{}, fmt.Errorf("backup %s: fetch %s: %w", b.Name, id, err)
	}
	if len(files) == 0 {
		return nil, dbx.Phase{}, fmt.Errorf("backup %s: fetch %s: the fetch command wrote nothing into $STEWARD_FETCH_DIR (%s)", b.Name, id, abs)
	}
	return files, phase, nil
}
