package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/stewardhq/steward/internal/dbx"
)

// Phase names Fetch reports.
const (
	PhaseFetch   = "fetch"
	PhaseVerify  = "verify checksum"
	PhaseDecrypt = "decrypt"
)

// Fetch downloads every object of backup m into dir, verifying each one's
// size and SHA-256 against the manifest while it streams (a mismatch is
// ErrChecksum naming the object), then decrypts encrypted objects with
// identity (a wrong key is ErrDecrypt). It returns the local paths of the
// restorable files (dir is the dump directory m.Dump describes) and the
// timed phases: fetch, verify checksum and, for encrypted backups, decrypt.
// On error it removes the files it wrote.
func Fetch(ctx context.Context, repo *Repository, m Manifest, dir string, identity string, progress func(Progress)) (files []string, phases []dbx.Phase, err error) {
	var ids []age.Identity
	if m.Encrypted {
		if strings.TrimSpace(identity) == "" {
			return nil, nil, fmt.Errorf("%w %s: it is encrypted to %s and no identity is configured; set encrypt.identity to a secret reference holding the age secret key",
				ErrDecrypt, m.Ref(), recipientList(m.Recipients))
		}
		if ids, err = parseIdentity(identity); err != nil {
			return nil, nil, err
		}
	}
	if len(m.Objects) == 0 {
		return nil, nil, fmt.Errorf("backup %s has no objects to fetch", m.Ref())
	}
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()

	// Fetch and verify: one pass, the hashing timed on its own.
	fetch := newTracker(progress, PhaseFetch, m.Size)
	start := time.Now()
	var hashTime time.Duration
	var fetched int64
	local := make([]string, len(m.Objects))
	for i, o := range m.Objects {
		p, err := localPath(dir, o.Name)
		if err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, nil, fmt.Errorf("fetch %s: %w", m.Ref(), err)
		}
		written = append(written, p)
		ht, err := fetchObject(ctx, repo, m, o, p, fetch)
		hashTime += ht
		if err != nil {
			return nil, nil, err
		}
		local[i] = p
		fetched += o.Size
	}
	fetch.done()
	total := time.Since(start)
	phases = append(phases,
		dbx.Phase{Name: PhaseFetch, Duration: total - hashTime, Bytes: fetched},
		dbx.Phase{Name: PhaseVerify, Duration: hashTime, Bytes: fetched})
	if !m.Encrypted {
		return local, phases, nil
	}

	dec := newTracker(progress, PhaseDecrypt, fetched)
	start = time.Now()
	var plain int64
	files = make([]string, len(local))
	for i, p := range local {
		out := strings.TrimSuffix(p, encryptedSuffix)
		if out == p {
			return nil, nil, fmt.Errorf("%w %s: object %s has no %s suffix", ErrDecrypt, m.Ref(), m.Objects[i].Name, encryptedSuffix)
		}
		written = append(written, out)
		n, err := decryptFile(out, p, ids, m, m.Objects[i].Name, dec)
		if err != nil {
			return nil, nil, err
		}
		if err := os.Remove(p); err != nil {
			return nil, nil, fmt.Errorf("fetch %s: %w", m.Ref(), err)
		}
		files[i] = out
		plain += n
	}
	dec.done()
	phases = append(phases, dbx.Phase{Name: PhaseDecrypt, Duration: time.Since(start), Bytes: plain})
	return files, phases, nil
}

// localPath is where object name goes under dir.
func localPath(dir, name string) (string, error) {
	if err := checkObjectName(name); err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.FromSlash(name)), nil
}

// fetchObject downloads one object to path, checking size and SHA-256. It
// returns the time spent hashing.
func fetchObject(ctx context.Context, repo *Repository, m Manifest, o Object, path string, t *tracker) (time.Duration, error) {
	rd, err := repo.Open(ctx, m, o)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", m.Ref(), err)
	}
	h := &timedHash{h: sha256.New()}
	n, err := io.Copy(io.MultiWriter(f, h), countingReader{r: rd, t: t})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return h.spent, fmt.Errorf("fetch %s: object %s: %w", m.Ref(), o.Name, err)
	}
	return h.spent, check(m, o, n, h.h)
}

// check compares what was read of an object with its manifest entry.
func check(m Manifest, o Object, n int64, h hash.Hash) error {
	if n != o.Size {
		return fmt.Errorf("%w in backup %s: object %s is %d bytes, the manifest says %d (truncated or replaced)", ErrChecksum, m.Ref(), o.Name, n, o.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != o.SHA256 {
		return fmt.Errorf("%w in backup %s: object %s has SHA-256 %s, the manifest says %s (corrupted or replaced)", ErrChecksum, m.Ref(), o.Name, sum, o.SHA256)
	}
	return nil
}

// timedHash measures the time spent hashing.
type timedHash struct {
	h     hash.Hash
	spent time.Duration
}

func (t *timedHash) Write(p []byte) (int, error) {
	s := time.Now()
	n, err := t.h.Write(p)
	t.spent += time.Since(s)
	return n, err
}

// decryptFile decrypts src into dst and returns the plaintext size.
func decryptFile(dst, src string, ids []age.Identity, m Manifest, object string, t *tracker) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("decrypt %s: %w", m.Ref(), err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("decrypt %s: %w", m.Ref(), err)
	}
	w := &writeErr{w: out}
	n, err := decrypt(w, countingReader{r: in, t: t}, ids, m, object)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("decrypt %s: write %s: %w", m.Ref(), dst, cerr)
	}
	if w.err != nil {
		// A write failure (disk full) is not a decryption problem.
		return n, fmt.Errorf("decrypt %s: %w", m.Ref(), w.err) // w.err names dst
	}
	return n, err
}

// writeErr remembers the first write error of w.
type writeErr struct {
	w   io.Writer
	err error
}

func (e *writeErr) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// Verify re-reads every object of backup m from the repository and
// compares its size and SHA-256 with the manifest. Every mismatching or
// missing object is reported (errors.Is ErrChecksum).
func Verify(ctx context.Context, repo *Repository, m Manifest) error {
	var errs []error
	for _, o := range m.Objects {
		if err := verifyObject(ctx, repo, m, o); err != nil {
			if !errors.Is(err, ErrChecksum) {
				return err // the repository failed, not the backup
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func verifyObject(ctx context.Context, repo *Repository, m Manifest, o Object) error {
	rd, err := repo.Open(ctx, m, o)
	if err != nil {
		return err
	}
	defer rd.Close()
	h := sha256.New()
	n, err := io.Copy(h, rd)
	if err != nil {
		return fmt.Errorf("verify %s: object %s: %w", m.Ref(), o.Name, err)
	}
	return check(m, o, n, h)
}
