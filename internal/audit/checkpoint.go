package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/store"
)

// ErrBadCheckpoint marks a checkpoint that is malformed or whose signature
// does not verify.
var ErrBadCheckpoint = errors.New("bad audit checkpoint")

// Key files in the data directory.
const (
	KeyFile    = "audit.key" // note signer key, mode 0600
	PubKeyFile = "audit.pub" // note verifier key
)

// LoadOrCreateKey returns the checkpoint signer and its verifier. With
// secretKey (the text of a note signer key, "PRIVATE+KEY+name+hash+data", from
// a secret reference) it uses that key. Otherwise it reads dataDir/audit.key,
// generating an Ed25519 key named origin on first start, and keeps the
// verifier key text in dataDir/audit.pub for publishing.
func LoadOrCreateKey(dataDir string, secretKey string, origin string) (note.Signer, note.Verifier, error) {
	if s := strings.TrimSpace(secretKey); s != "" {
		return keyPair(s, origin, "audit signing key")
	}
	if origin == "" {
		return nil, nil, errors.New("audit key: an origin (checkpoint name) is required")
	}
	keyPath := filepath.Join(dataDir, KeyFile)
	data, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = createKey(keyPath, origin)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("audit key %s is readable by others (mode %v); run chmod 600 %s", keyPath, fi.Mode().Perm(), keyPath)
	}
	signer, verifier, err := keyPair(strings.TrimSpace(string(data)), origin, keyPath)
	if err != nil {
		return nil, nil, err
	}
	vkey, err := verifierKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, nil, fmt.Errorf("audit key %s: %w", keyPath, err)
	}
	pubPath := filepath.Join(dataDir, PubKeyFile)
	if cur, err := os.ReadFile(pubPath); err != nil || strings.TrimSpace(string(cur)) != vkey {
		if err := writeFileAtomic(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("audit key: %w", err)
		}
	}
	return signer, verifier, nil
}

// createKey generates a key into path. Two processes starting at once agree
// on one key: the file appears whole (hard link of a complete temp file) and
// only once.
func createKey(path, origin string) ([]byte, error) {
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit.key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.WriteString(skey + "\n"); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return os.ReadFile(path)
}

// keyPair parses a signer key and derives its verifier.
func keyPair(skey, origin, where string) (note.Signer, note.Verifier, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a note signer key (PRIVATE+KEY+name+hash+data): %w", where, err)
	}
	if origin != "" && signer.Name() != origin {
		return nil, nil, fmt.Errorf("%s: key is named %q but the checkpoint origin is %q; use a key of that name or change the origin", where, signer.Name(), origin)
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	return signer, verifier, nil
}

// verifierKey derives the verifier key text from an Ed25519 signer key.
func verifierKey(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64; the base64 may itself contain '+'.
	_, rest, _ := strings.Cut(skey, "+")
	_, rest, _ = strings.Cut(rest, "+")
	name, rest, _ := strings.Cut(rest, "+")
	_, key64, _ := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// Checkpoint is a signed statement that the log had Size events and that
// event Size had hash Hash.
type Checkpoint struct {
	Origin string `json:"origin"`
	Size   int64  `json:"size"`
	Hash   string `json:"hash"` // hex
	Note   []byte `json:"note"` // the signed note text
}

// Checkpoint appends an audit.checkpoint event and signs a checkpoint that
// covers the log up to and including it, records it in the store and returns
// it. The note body is "ORIGIN\nSIZE\nBASE64(head hash)\n" (C2SP
// tlog-checkpoint), signed with signer.
func (l *Log) Checkpoint(ctx context.Context, signer note.Signer, origin string) (Checkpoint, error) {
	if origin == "" || strings.ContainsAny(origin, "\n") {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: origin %q must be one non-empty line", origin)
	}
	ev, err := l.Append(ctx, Entry{
		Actor: "system:audit", Action: "audit.checkpoint", Target: origin, Outcome: "ok",
		Details: map[string]any{"key": signer.Name(), "key_hash": fmt.Sprintf("%08x", signer.KeyHash())},
	})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	sum, err := hex.DecodeString(ev.Hash)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	body := fmt.Sprintf("%s\n%d\n%s\n", origin, ev.Seq, base64.StdEncoding.EncodeToString(sum))
	msg, err := note.Sign(&note.Note{Text: body}, signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: sign: %w", err)
	}
	c := Checkpoint{Origin: origin, Size: ev.Seq, Hash: ev.Hash, Note: msg}
	if _, err := l.store.InsertCheckpoint(ctx, store.Checkpoint{Size: c.Size, HeadHash: c.Hash, Note: string(msg)}); err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	l.log.Info("audit checkpoint", "origin", origin, "size", c.Size, "hash", c.Hash)
	return c, nil
}

// ParseCheckpoint verifies the signature of a checkpoint note with verifier
// and parses its body. Extension lines after the hash are allowed and
// ignored.
func ParseCheckpoint(text []byte, verifier note.Verifier) (Checkpoint, error) {
	n, err := note.Open(text, note.VerifierList(verifier))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, fmt.Errorf("%w: body needs origin, size and hash lines", ErrBadCheckpoint)
	}
	origin, sizeText, hashText := lines[0], lines[1], lines[2]
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if origin == "" || err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("%w: bad origin %q or size %q", ErrBadCheckpoint, origin, sizeText)
	}
	sum, err := base64.StdEncoding.DecodeString(hashText)
	if err != nil || len(sum) != 32 {
		return Checkpoint{}, fmt.Errorf("%w: hash %q is not base64 of 32 bytes", ErrBadCheckpoint, hashText)
	}
	return Checkpoint{Origin: origin, Size: size, Hash: hex.EncodeToString(sum), Note: bytes.Clone(text)}, nil
}

// StoredCheckpoint returns the newest checkpoint recorded in the store,
// verified with verifier; store.ErrNotFound when there is none.
func StoredCheckpoint(ctx context.Context, s *store.Store, verifier note.Verifier) (Checkpoint, error) {
	c, err := s.LatestCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	return ParseCheckpoint([]byte(c.Note), verifier)
}

// Publish sends c to every target and joins the errors: "file:/dir" writes
// dir/checkpoint-SIZE.txt and dir/latest.txt (each atomically, by rename);
// "http://…" and "https://…" POST the note as text/plain and want a 2xx.
// A different checkpoint already published at the same size is an error (a
// forked log).
func Publish(ctx context.Context, c Checkpoint, targets []string, client *http.Client) error {
	if client == nil {
		client = http.DefaultClient
	}
	var errs []error
	for _, t := range targets {
		var err error
		switch {
		case strings.HasPrefix(t, "file:"):
			err = publishFile(strings.TrimPrefix(strings.TrimPrefix(t, "file:"), "//"), c)
		case strings.HasPrefix(t, "http://"), strings.HasPrefix(t, "https://"):
			err = publishHTTP(ctx, client, t, c)
		default:
			err = errors.New("unknown target; use file:/dir or https://…")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("publish checkpoint %d to %s: %w", c.Size, t, err))
		}
	}
	return errors.Join(errs...)
}

func publishFile(dir string, c Checkpoint) error {
	if dir == "" {
		return errors.New("empty directory")
	}
	path := filepath.Join(dir, fmt.Sprintf("checkpoint-%d.txt", c.Size))
	if cur, err := os.ReadFile(path); err == nil {
		if !bytes.Equal(cur, c.Note) {
			return fmt.Errorf("%s exists with a different checkpoint of the same size (forked log?)", path)
		}
	} else if err := writeFileAtomic(path, c.Note, 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "latest.txt"), c.Note, 0o644)
}

func publishHTTP(ctx context.Context, client *http.Client, url string, c Checkpoint) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(c.Note))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// writeFileAtomic writes data to a temp file in path's directory, syncs it
// and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
