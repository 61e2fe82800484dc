package audit

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/store"
)

const origin = "steward.example.com/audit"

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Concurrent first starts agree on one key.
	var wg sync.WaitGroup
	names := make([]uint32, 4)
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, err := LoadOrCreateKey(dir, "", origin)
			if err != nil {
				t.Error(err)
				return
			}
			names[i] = s.KeyHash()
		}()
	}
	wg.Wait()
	for _, h := range names[1:] {
		if h != names[0] {
			t.Fatal("concurrent starts made different keys")
		}
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit.key mode: %v %v", fi.Mode(), err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, PubKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil || v.Name() != origin || v.KeyHash() != names[0] {
		t.Fatalf("audit.pub: %v", err)
	}
	if _, _, err := LoadOrCreateKey(dir, "", "other.example.com/audit"); err == nil || !strings.Contains(err.Error(), "named") {
		t.Fatalf("origin mismatch: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(dir, "", origin); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	// A key from a secret reference.
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, v2, err := LoadOrCreateKey(t.TempDir(), skey+"\n", "")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := note.NewVerifier(vkey)
	if s.KeyHash() != want.KeyHash() || v2.KeyHash() != want.KeyHash() || v2.Name() != origin {
		t.Fatal("secret key and derived verifier disagree")
	}
	if _, _, err := LoadOrCreateKey(t.TempDir(), "PRIVATE+KEY+junk", ""); err == nil {
		t.Fatal("junk key accepted")
	}
}

func TestCheckpointSignature(t *testing.T) {
	t.Parallel()
	b := setup(t, store.SQLite)
	signer, verifier, err := LoadOrCreateKey(t.TempDir(), "", origin)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 5)
	c, err := b.log.Checkpoint(b.ctx, signer, origin)
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 6 || !bytes.HasPrefix(c.Note, []byte(origin+"\n6\n")) || !bytes.Contains(c.Note, []byte("\n\n— "+origin+" ")) {
		t.Fatalf("checkpoint note:\n%s", c.Note)
	}
	got, err := ParseCheckpoint(c.Note, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin != origin || got.Size != 6 || got.Hash != c.Hash {
		t.Fatalf("parsed %+v", got)
	}
	stored, err := StoredCheckpoint(b.ctx, b.store, verifier)
	if err != nil || stored.Size != 6 || stored.Hash != c.Hash {
		t.Fatalf("stored checkpoint %+v %v", stored, err)
	}
	last := loadEvent(t, b.store, 6)
	if last.Action != "audit.checkpoint" || last.Target != origin || last.Hash != c.Hash {
		t.Fatalf("checkpoint event %+v", last)
	}

	_, otherVerifier, err := LoadOrCreateKey(t.TempDir(), "", origin)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(c.Note, []byte("\n6\n"), []byte("\n7\n"), 1)
	for name, tc := range map[string]struct {
		text []byte
		v    note.Verifier
	}{
		"other key":     {c.Note, otherVerifier},
		"edited body":   {forged, verifier},
		"no signature":  {[]byte(origin + "\n6\nAAAA\n"), verifier},
		"bad signature": {bytes.Replace(c.Note, []byte("— "+origin+" "), []byte("— "+origin+" AAAA"), 1), verifier},
	} {
		if _, err := ParseCheckpoint(tc.text, tc.v); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("%s: err = %v, want ErrBadCheckpoint", name, err)
		}
	}
	// A correctly signed body that is not a checkpoint.
	msg, err := note.Sign(&note.Note{Text: origin + "\n06\n" + strings.Repeat("A", 44) + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCheckpoint(msg, verifier); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("leading zero size: %v", err)
	}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	b := setup(t, store.SQLite)
	signer, _, err := LoadOrCreateKey(t.TempDir(), "", origin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.log.Checkpoint(b.ctx, signer, origin)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var posted []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			http.Error(w, "want a text/plain POST", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = body
		mu.Unlock()
		if r.URL.Path == "/fail" {
			http.Error(w, "storage full", http.StatusInsufficientStorage)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := Publish(b.ctx, c, []string{"file:" + dir, srv.URL + "/ok"}, srv.Client()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"checkpoint-1.txt", "latest.txt"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, c.Note) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	mu.Lock()
	if !bytes.Equal(posted, c.Note) {
		t.Fatalf("posted %q", posted)
	}
	mu.Unlock()
	// Publishing again is idempotent; a different note of the same size is a fork.
	if err := Publish(b.ctx, c, []string{"file://" + dir}, nil); err != nil {
		t.Fatal(err)
	}
	fork := c
	fork.Note = append(bytes.Clone(c.Note), 'x')
	err = Publish(b.ctx, fork, []string{"file:" + dir, srv.URL + "/fail", "ftp://x", "file:" + filepath.Join(dir, "missing")}, srv.Client())
	for _, want := range []string{"forked log", "507", "storage full", "unknown target", "missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("joined error %v lacks %q", err, want)
		}
	}
}
