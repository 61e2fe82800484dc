package backup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/stewardhq/steward/internal/dbx"
)

// Sentinel errors callers branch on.
var (
	// ErrNoBackup means the backup asked for does not exist (no manifest).
	ErrNoBackup = errors.New("no backup")
	// ErrChecksum means an object's bytes differ from its manifest entry.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrDecrypt means an object could not be decrypted with the identity.
	ErrDecrypt = errors.New("cannot decrypt backup")
	// ErrNotRun means the method is one Steward reads but does not run.
	ErrNotRun = errors.New("backup method is not run by steward")
)

// ManifestName is the name of the manifest object in a backup's folder.
const ManifestName = "manifest.json"

// Manifest describes one backup. It is the last object written, so its
// presence means the backup is complete.
type Manifest struct {
	ID            string           `json:"id"`
	Service       string           `json:"service"`
	Backup        string           `json:"backup"`
	Database      string           `json:"database"`
	Method        string           `json:"method"`
	Engine        string           `json:"engine"`
	ServerVersion string           `json:"server_version,omitempty"`
	ToolVersion   string           `json:"tool_version,omitempty"`
	StartedAt     time.Time        `json:"started_at"`
	FinishedAt    time.Time        `json:"finished_at"`
	SnapshotTime  time.Time        `json:"snapshot_time"`
	Size          int64            `json:"size"`
	Objects       []Object         `json:"objects"`
	RowCounts     map[string]int64 `json:"row_counts,omitempty"`
	Freshness     string           `json:"freshness,omitempty"`
	SameSnapshot  bool             `json:"same_snapshot"`
	Encrypted     bool             `json:"encrypted"`
	Recipients    []string         `json:"recipients,omitempty"`
	Dump          dbx.Dump         `json:"dump"`
	Commands      []string         `json:"commands,omitempty"`
}

// Object is one stored file of a backup: its name relative to the backup's
// folder, its stored size and the SHA-256 of the stored (possibly
// encrypted) bytes, in hex.
type Object struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Ref is the backup's full reference, SERVICE/BACKUP/ID.
func (m Manifest) Ref() string { return m.Service + "/" + m.Backup + "/" + m.ID }

// Time is the point in time the backup represents: the snapshot time, or
// the start when the source did not report one.
func (m Manifest) Time() time.Time {
	if !m.SnapshotTime.IsZero() {
		return m.SnapshotTime
	}
	return m.StartedAt
}

// Age is how old the backup's data is at now.
func (m Manifest) Age(now time.Time) time.Duration { return now.Sub(m.Time()) }

// NewID returns a backup id: the start time in UTC, sortable as text, and
// a random suffix, like 20260102T030405Z-1a2b3c.
func NewID(started time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return started.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Stale reports whether a backup is older than the recovery point
// objective at now. An unset objective (0) is never stale.
func Stale(m Manifest, rpo time.Duration, now time.Time) bool {
	return rpo > 0 && m.Age(now) > rpo
}

// sortManifests orders by snapshot time, then start time, then id, oldest
// first.
func lessManifest(a, b Manifest) int {
	if c := a.Time().Compare(b.Time()); c != 0 {
		return c
	}
	if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
		return c
	}
	switch {
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}
