package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/store"
	"github.com/stewardhq/steward/internal/testenv"
)

// drivers is the conformance matrix: every test in this file runs on each.
var drivers = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "steward.db") }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresURL(t) }},
}

func forEachDriver(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, d.url(t))
		})
	}
}

func open(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := store.Open(ctx, url, store.Options{})
				if err != nil {
					errs <- err
					return
				}
				s.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent open: %v", err)
		}
		s := open(t, url)
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != store.LatestVersion() {
			t.Fatalf("schema version = %d, %v; want %d", v, err, store.LatestVersion())
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM steward_schema_migrations").Scan(&n); err != nil || n != v {
			t.Fatalf("migrations recorded = %d, %v; want %d (each once)", n, err, v)
		}
	})
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		next := store.LatestVersion() + 1
		q := fmt.Sprintf("INSERT INTO steward_schema_migrations (version, name, applied_at) VALUES (%d, 'future', 'x')", next)
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []store.Options{{}, {NoMigrate: true}} {
			_, err := store.Open(ctx, url, opts)
			if !errors.Is(err, store.ErrSchemaTooNew) {
				t.Fatalf("open newer schema (%+v): err = %v, want ErrSchemaTooNew", opts, err)
			}
		}
	})
}

func TestUsersAndTokens(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		u, err := s.CreateUser(ctx, store.User{Name: "alice", Email: "a@example.com", Roles: []string{"admin", "approver"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, store.User{Name: "alice"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate user: err = %v, want ErrExists", err)
		}
		got, err := s.GetUser(ctx, "alice")
		if err != nil || got.ID != u.ID || !got.HasRole("approver") || got.Disabled() {
			t.Fatalf("get user = %+v, %v", got, err)
		}
		if _, err := s.GetUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing user: err = %v", err)
		}
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		tok, err := s.CreateToken(ctx, store.Token{UserID: u.ID, Name: "ci", Prefix: "stw_abcd", Hash: "h1", ExpiresAt: &exp})
		if err != nil {
			t.Fatal(err)
		}
		gt, gu, err := s.TokenByHash(ctx, "h1")
		if err != nil || gt.ID != tok.ID || gu.Name != "alice" || gt.ExpiresAt == nil || !gt.ExpiresAt.Equal(exp) {
			t.Fatalf("token by hash = %+v %+v %v", gt, gu, err)
		}
		if err := s.RevokeToken(ctx, tok.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if gt, _ := s.GetToken(ctx, tok.ID); gt.RevokedAt == nil {
			t.Fatal("token not revoked")
		}
		if err := s.RevokeToken(ctx, 999, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke missing: %v", err)
		}
		if err := s.DisableUser(ctx, "alice", time.Now()); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetUser(ctx, "alice"); !got.Disabled() {
			t.Fatal("user not disabled")
		}
		users, err := s.ListUsers(ctx)
		if err != nil || len(users) != 1 {
			t.Fatalf("list users = %v, %v", users, err)
		}
	})
}

func TestAuditAppendConcurrentProcessesKeepOneChain(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		// Two independent pools stand for two processes (server and CLI).
		a, b := open(t, url), open(t, url)
		var wg sync.WaitGroup
		for _, s := range []*store.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					err := s.AppendAudit(ctx, func(h store.AuditHead) ([]store.AuditRecord, error) {
						var recs []store.AuditRecord
						prev := h.Hash
						for i := range 3 {
							seq := h.Seq + int64(i) + 1
							hash := fmt.Sprintf("h%d", seq)
							recs = append(recs, store.AuditRecord{Seq: seq, Time: time.Now(), Actor: "test", Action: "x", Details: "{}", PrevHash: prev, Hash: hash})
							prev = hash
						}
						return recs, nil
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		var n int64
		prev := ""
		err := a.ScanAudit(ctx, 1, func(r store.AuditRecord) error {
			n++
			if r.Seq != n {
				return fmt.Errorf("seq %d at position %d", r.Seq, n)
			}
			if r.PrevHash != prev {
				return fmt.Errorf("event %d: prev %q, want %q (chain forked)", r.Seq, r.PrevHash, prev)
			}
			prev = r.Hash
			return nil
		})
		if err != nil || n != 120 {
			t.Fatalf("scan: n = %d, err = %v", n, err)
		}
		recs, err := a.ListAudit(ctx, store.AuditFilter{BeforeSeq: 50, Limit: 10})
		if err != nil || len(recs) != 10 || recs[0].Seq != 49 {
			t.Fatalf("list audit page: %d records, %v", len(recs), err)
		}
	})
}

func TestAuditAppendRejectsWrongSeq(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		s := open(t, url)
		err := s.AppendAudit(context.Background(), func(h store.AuditHead) ([]store.AuditRecord, error) {
			return []store.AuditRecord{{Seq: h.Seq + 2, Time: time.Now(), Details: "{}"}}, nil
		})
		if !errors.Is(err, store.ErrAuditConflict) {
			t.Fatalf("err = %v, want ErrAuditConflict", err)
		}
		if h, _ := s.AuditHead(context.Background()); h.Seq != 0 {
			t.Fatalf("partial write: head = %+v", h)
		}
	})
}

func TestCheckpoints(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		if _, err := s.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("no checkpoint: %v", err)
		}
		for i := int64(1); i <= 2; i++ {
			if _, err := s.InsertCheckpoint(ctx, store.Checkpoint{Size: i * 10, HeadHash: "h", Note: "n"}); err != nil {
				t.Fatal(err)
			}
		}
		c, err := s.LatestCheckpoint(ctx)
		if err != nil || c.Size != 20 {
			t.Fatalf("latest = %+v, %v", c, err)
		}
	})
}

func TestBadStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, []byte("this is not a sqlite database, just some bytes that look nothing like one....................................................................................................."), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		url  string
		want error
	}{
		{"corrupt sqlite", "sqlite://" + corrupt, store.ErrCorrupt},
		{"missing directory", "sqlite://" + filepath.Join(dir, "nope", "steward.db"), store.ErrUnreachable},
		{"unreachable postgres", "postgres://steward@127.0.0.1:1/steward?connect_timeout=2", store.ErrUnreachable},
		{"unknown scheme", "mysql://root@localhost/steward", store.ErrBadStoreURL},
		{"empty", "", store.ErrBadStoreURL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := store.Open(ctx, c.url, store.Options{})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	// The corrupt file is left exactly as it was.
	b, _ := os.ReadFile(corrupt)
	if len(b) == 0 || string(b[:12]) != "this is not " {
		t.Fatal("corrupt store file was modified")
	}
}

func TestInsertAuditBatchConflictWritesNothing(t *testing.T) {
	t.Parallel()
	forEachDriver(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		rec := func(seq int64, prev, hash string) store.AuditRecord {
			return store.AuditRecord{Seq: seq, Time: time.Now(), Actor: "a", Action: "x", Details: "{}", PrevHash: prev, Hash: hash}
		}
		if err := s.InsertAuditBatch(ctx, []store.AuditRecord{rec(1, "0", "h1"), rec(2, "h1", "h2")}); err != nil {
			t.Fatal(err)
		}
		// A writer with a stale head (it thinks the log ends at 1).
		err := s.InsertAuditBatch(ctx, []store.AuditRecord{rec(2, "h1", "other2"), rec(3, "other2", "other3")})
		if !errors.Is(err, store.ErrAuditConflict) {
			t.Fatalf("stale head: err = %v, want ErrAuditConflict", err)
		}
		big := make([]store.AuditRecord, 0, 450)
		prev := "h2"
		for seq := int64(3); seq < 453; seq++ {
			h := fmt.Sprintf("b%d", seq)
			big = append(big, rec(seq, prev, h))
			prev = h
		}
		big[len(big)-1].Seq = 2 // the last statement of the batch conflicts: the whole batch is rolled back
		if err := s.InsertAuditBatch(ctx, big); !errors.Is(err, store.ErrAuditConflict) {
			t.Fatalf("non-contiguous batch: %v", err)
		}
		big[len(big)-1].Seq = 452
		if err := s.InsertAuditBatch(ctx, append([]store.AuditRecord{rec(2, "h1", "x")}, big...)); !errors.Is(err, store.ErrAuditConflict) {
			t.Fatalf("conflicting big batch: %v", err)
		}
		h, err := s.AuditHead(ctx)
		if err != nil || h.Seq != 2 || h.Hash != "h2" {
			t.Fatalf("head after conflicts = %+v, %v; want seq 2", h, err)
		}
		if err := s.InsertAuditBatch(ctx, big); err != nil {
			t.Fatalf("big batch: %v", err)
		}
		if h, _ := s.AuditHead(ctx); h.Seq != 452 {
			t.Fatalf("head = %+v", h)
		}
	})
}
