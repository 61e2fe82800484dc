package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/store"
)

// Files of a report bundle besides the report itself.
const (
	AuditFile      = "audit.jsonl"
	CheckpointFile = "checkpoint.txt"
	KeyFile        = "audit.pub"
	VerifyFile     = "VERIFY.md"
)

// VerifyCommand is what an auditor runs in the bundle's folder.
const VerifyCommand = "steward audit verify --file " + AuditFile + " --checkpoint " + CheckpointFile + " --key " + KeyFile

// Bundle is what Write wrote.
type Bundle struct {
	Dir    string   `json:"dir"`
	Files  []string `json:"files"`  // names in Dir
	Events int64    `json:"events"` // events in audit.jsonl
}

// Write writes the report in format f into dir with the audit export up to
// the checkpoint's size, the checkpoint and the verifier key pubKey (the
// text of audit.pub), and VERIFY.md. Each file is written atomically; other
// files in dir are left alone. Without a checkpoint only the report and
// VERIFY.md are written.
func Write(ctx context.Context, s *store.Store, r *Report, f Format, dir string, pubKey []byte) (Bundle, error) {
	b := Bundle{Dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, fmt.Errorf("report folder: %w", err)
	}
	var rep bytes.Buffer
	if err := r.Render(&rep, f); err != nil {
		return b, fmt.Errorf("render report: %w", err)
	}
	sums := map[string]string{}
	put := func(name string, data []byte) error {
		if err := writeAtomic(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		sums[name] = hex.EncodeToString(sum[:])
		b.Files = append(b.Files, name)
		return nil
	}
	if err := put(f.FileName(), rep.Bytes()); err != nil {
		return b, err
	}
	if r.Checkpoint != nil {
		n, sum, err := exportFile(ctx, s, r.Checkpoint.Size, filepath.Join(dir, AuditFile))
		if err != nil {
			return b, err
		}
		b.Events, sums[AuditFile], b.Files = n, sum, append(b.Files, AuditFile)
		if err := put(CheckpointFile, []byte(r.Checkpoint.Note)); err != nil {
			return b, err
		}
		key := strings.TrimSpace(string(pubKey)) + "\n"
		if err := put(KeyFile, []byte(key)); err != nil {
			return b, err
		}
	}
	if err := put(VerifyFile, verifyText(r, f, sums)); err != nil {
		return b, err
	}
	return b, nil
}

// errEnough stops an export once it has written the events wanted.
var errEnough = errors.New("enough events")

// lineLimit passes through the first n lines written to it, then fails
// with errEnough.
type lineLimit struct {
	w io.Writer
	n int64
}

func (l *lineLimit) Write(p []byte) (int, error) {
	written := 0
	for l.n > 0 && len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			k, err := l.w.Write(p)
			return written + k, err
		}
		k, err := l.w.Write(p[:i+1])
		written += k
		if err != nil {
			return written, err
		}
		l.n--
		p = p[i+1:]
	}
	if len(p) > 0 {
		return written, errEnough
	}
	return written, nil
}

// exportFile writes events 1..size to path as JSONL (the format of
// `steward audit export`), atomically, and returns how many it wrote and
// the file's SHA-256.
func exportFile(ctx context.Context, s *store.Store, size int64, path string) (int64, string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return 0, "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	lim := &lineLimit{w: io.MultiWriter(tmp, h), n: size}
	if _, err := audit.Export(ctx, s, 1, lim); err != nil && !errors.Is(err, errEnough) {
		tmp.Close()
		return 0, "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return 0, "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return 0, "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if n := size - lim.n; n != size {
		return n, "", fmt.Errorf("audit export: the store holds %d events, fewer than the checkpoint's size %d; run `steward audit verify` on the server", n, size)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// verifyText is VERIFY.md: what the files are and the exact commands.
func verifyText(r *Report, f Format, sums map[string]string) []byte {
	var b strings.Builder
	b.WriteString("# Verifying this evidence report\n\n")
	fmt.Fprintf(&b, "Report: `%s`, period %s to %s (UTC), generated %s by %s.\n\n", f.FileName(),
		r.From.Format("2006-01-02 15:04:05Z"), r.To.Format("2006-01-02 15:04:05Z"), r.GeneratedAt.Format("2006-01-02 15:04:05Z"), r.GeneratedBy)
	if r.Checkpoint == nil {
		b.WriteString("**This report cannot be verified:** " + r.Coverage.Problem + "\n")
		return []byte(b.String())
	}
	b.WriteString("## Files\n\n")
	fmt.Fprintf(&b, "- `%s`: the audit log, events 1 to %d, one JSON object per line (the format of `steward audit export`).\n", AuditFile, r.Checkpoint.Size)
	fmt.Fprintf(&b, "- `%s`: checkpoint %d, a C2SP signed note stating that event %d of log `%s` has hash `%s`.\n", CheckpointFile, r.Checkpoint.ID,
		r.Checkpoint.Size, r.Checkpoint.Origin, r.Checkpoint.Hash)
	fmt.Fprintf(&b, "- `%s`: the Ed25519 verifier key of the Steward that signed it. Compare it with the key the operator published.\n", KeyFile)
	fmt.Fprintf(&b, "- `%s`: the evidence; every item names the audit event (seq and hash) that records it.\n\n", f.FileName())
	b.WriteString("## 1. Verify the log against the signed checkpoint\n\nIn this folder run:\n\n```sh\n" + VerifyCommand + "\n```\n\n")
	fmt.Fprintf(&b, "It must print `audit log ok: %d events, head %d %s, 1 checkpoint(s) consistent` and exit 0. Any edited, removed or "+
		"reordered event makes it print `audit log FAILED verification at event N` and exit 1.\n\n", r.Checkpoint.Size, r.Checkpoint.Size, short(r.Checkpoint.Hash))
	b.WriteString("## 2. Check that the evidence is in the verified log\n\n")
	if r.Coverage.Covered {
		fmt.Fprintf(&b, "Every audited item of the report has a seq of at most %d, so it is in `%s`. ", r.Checkpoint.Size, AuditFile)
	} else {
		fmt.Fprintf(&b, "**Warning:** %s\n\n", r.Coverage.Problem)
	}
	fmt.Fprintf(&b, "For any item, find its event and compare the hash with the report's:\n\n```sh\ngrep '\"seq\":%d,' %s\n```\n\n", max(r.Coverage.MaxSeq, 1), AuditFile)
	b.WriteString("Items without a seq (probe availability, notification deliveries, configuration notes) are computed from Steward's store and " +
		"are not covered by the signature.\n\n")
	b.WriteString("## 3. Checksums of the files as written\n\n```\n")
	for _, name := range []string{f.FileName(), AuditFile, CheckpointFile, KeyFile} {
		if s, ok := sums[name]; ok {
			fmt.Fprintf(&b, "%s  %s\n", s, name)
		}
	}
	b.WriteString("```\n\nCheck them with `sha256sum -c` after copying this block into a file.\n")
	return []byte(b.String())
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
