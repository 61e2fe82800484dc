package dbxtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/dbx"
)

// Execer runs a SQL script on a database. Engines implement it (outside
// dbx.Engine) so the suite can seed them through their own connection code.
type Execer interface {
	Exec(ctx context.Context, url, script string) error
}

// Seed sizes: 1,000 customers and 4,000 orders.
const (
	Customers = 1000
	Orders    = 4000
)

// seedBase is the timestamp of the first row; row i is i minutes later.
var seedBase = time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)

// NewestSeeded is the newest updated_at the seed writes, as QueryValue
// renders it.
var NewestSeeded = seedBase.Add(Orders * time.Minute).Format(time.RFC3339)

// FreshnessQuery returns the newest data point of the seeded schema.
const FreshnessQuery = "SELECT max(updated_at) FROM orders"

// Seed creates and fills the schema on the database at url.
func Seed(t testing.TB, e dbx.Engine, url string) {
	t.Helper()
	d := dialectOf(t, e)
	ex := execer(t, e)
	ctx := context.Background()
	if err := ex.Exec(ctx, url, d.schema); err != nil {
		t.Fatalf("seed schema: %v", err)
	}
	var b strings.Builder
	flush := func(table string) {
		if b.Len() == 0 {
			return
		}
		if err := ex.Exec(ctx, url, "INSERT INTO "+table+" VALUES "+b.String()); err != nil {
			t.Fatalf("seed %s: %v", table, err)
		}
		b.Reset()
	}
	names := []string{"Ada Lovelace", "O'Brien & Sons", "Zoë Ångström", "李小龙", "Émile \"Q\" Zola", "🚀 Rocket Co"}
	for i := 1; i <= Customers; i++ {
		if b.Len() > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "(%d, %s, %s, %s)", i, lit(fmt.Sprintf("%s #%d", names[i%len(names)], i)),
			lit(fmt.Sprintf("c%d@example.com", i)), d.ts(seedBase.Add(time.Duration(i)*time.Second)))
		if i%500 == 0 {
			flush("customers")
		}
	}
	flush("customers")
	statuses := []string{"paid", "pending", "shipped", "refund"}
	for i := 1; i <= Orders; i++ {
		if b.Len() > 0 {
			b.WriteString(",")
		}
		receipt := "NULL"
		if i%3 == 0 {
			receipt = d.blob([]byte{0, byte(i), 0xff, '\'', '\\', byte(i >> 8), 0x80})
		}
		fmt.Fprintf(&b, "(%d, %d, %d.%02d, %s, %s, %s)", i, 1+(i*7)%Customers, i%997, i%100,
			lit(statuses[i%len(statuses)]), receipt, d.ts(seedBase.Add(time.Duration(i)*time.Minute)))
		if i%500 == 0 {
			flush("orders")
		}
	}
	flush("orders")
}

func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// dialect is what differs between engines in the suite.
type dialect struct {
	schema      string
	ts          func(time.Time) string
	blob        func([]byte) string
	checksum    string // one value summarising every row of both tables
	unreachable func(t *testing.T) string
}

var dialects = map[string]dialect{
	"postgres": {
		schema: `
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE, created_at timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
  amount numeric(12,2) NOT NULL, status text NOT NULL, receipt bytea, updated_at timestamptz NOT NULL);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_updated_at_idx ON orders (updated_at);
CREATE VIEW paid_orders AS SELECT * FROM orders WHERE status = 'paid';`,
		ts:   func(t time.Time) string { return "'" + t.UTC().Format("2006-01-02 15:04:05") + "+00'" },
		blob: func(b []byte) string { return `'\x` + hex.EncodeToString(b) + "'" },
		checksum: `SELECT md5(
  (SELECT string_agg(concat_ws(':', id, name, email, extract(epoch FROM created_at)::bigint), ',' ORDER BY id) FROM customers) || '|' ||
  (SELECT string_agg(concat_ws(':', id, customer_id, amount, status, encode(receipt, 'hex'), extract(epoch FROM updated_at)::bigint), ',' ORDER BY id) FROM orders))`,
		unreachable: func(*testing.T) string { return "postgres://steward@127.0.0.1:1/nosuchdb?sslmode=disable" },
	},
	"mysql": {
		schema: `
CREATE TABLE customers (id bigint PRIMARY KEY, name varchar(200) NOT NULL, email varchar(200) NOT NULL UNIQUE,
  created_at datetime(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, amount decimal(12,2) NOT NULL,
  status varchar(20) NOT NULL, receipt blob, updated_at datetime(6) NOT NULL,
  KEY orders_customer_id_idx (customer_id), KEY orders_updated_at_idx (updated_at),
  CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE VIEW paid_orders AS SELECT * FROM orders WHERE status = 'paid';
CREATE TRIGGER orders_amount_check BEFORE INSERT ON orders FOR EACH ROW SET NEW.status = lower(NEW.status);`,
		ts:   func(t time.Time) string { return "'" + t.UTC().Format("2006-01-02 15:04:05") + "'" },
		blob: func(b []byte) string { return "X'" + hex.EncodeToString(b) + "'" },
		checksum: `SELECT md5(concat(
  (SELECT group_concat(concat_ws(':', id, name, email, created_at) ORDER BY id SEPARATOR ',') FROM customers), '|',
  (SELECT group_concat(concat_ws(':', id, customer_id, amount, status, coalesce(hex(receipt), ''), updated_at) ORDER BY id SEPARATOR ',') FROM orders)))`,
		unreachable: func(*testing.T) string { return "root@tcp(127.0.0.1:1)/nosuchdb" },
	},
	"sqlite": {
		schema: `
PRAGMA journal_mode = WAL;
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id),
  amount NUMERIC NOT NULL, status TEXT NOT NULL, receipt BLOB, updated_at TEXT NOT NULL);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_updated_at_idx ON orders (updated_at);
CREATE VIEW paid_orders AS SELECT * FROM orders WHERE status = 'paid';`,
		ts:   func(t time.Time) string { return "'" + t.UTC().Format("2006-01-02 15:04:05") + "'" },
		blob: func(b []byte) string { return "X'" + hex.EncodeToString(b) + "'" },
		checksum: `SELECT
  (SELECT group_concat(id || ':' || name || ':' || email || ':' || created_at, ',') FROM (SELECT * FROM customers ORDER BY id)) || '|' ||
  (SELECT group_concat(id || ':' || customer_id || ':' || amount || ':' || status || ':' || coalesce(hex(receipt), '') || ':' || updated_at, ',') FROM (SELECT * FROM orders ORDER BY id))`,
		unreachable: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nosuchdir", "nosuchdb.db") },
	},
}

func dialectOf(t testing.TB, e dbx.Engine) dialect {
	t.Helper()
	d, ok := dialects[e.Name()]
	if !ok {
		t.Fatalf("dbxtest has no dialect for engine %q; add one", e.Name())
	}
	return d
}

func execer(t testing.TB, e dbx.Engine) Execer {
	t.Helper()
	ex, ok := e.(Execer)
	if !ok {
		t.Fatalf("engine %s does not implement dbxtest.Execer (Exec(ctx, url, script) error)", e.Name())
	}
	return ex
}

// suite is what every case needs.
type suite struct {
	e       dbx.Engine
	d       dialect
	source  func(t *testing.T) string
	scratch dbx.ScratchOptions
}

// Run runs the conformance suite against e. source returns the URL of a
// fresh, empty database; scratch says where scratch databases go (Label is
// used as a prefix, made unique per case; an empty Dir means a temporary
// directory per case).
func Run(t *testing.T, e dbx.Engine, source func(t *testing.T) string, scratch dbx.ScratchOptions) {
	t.Helper()
	s := &suite{e: e, d: dialectOf(t, e), source: source, scratch: scratch}
	execer(t, e)
	if s.scratch.Label == "" {
		s.scratch.Label = "steward-dbxtest-"
	}
	t.Run("RoundTrip", s.roundTrip)
	t.Run("ConsistentWhileWriting", s.consistentWhileWriting)
	t.Run("QueryValue", s.queryValue)
	t.Run("UnreachableSource", s.unreachable)
	t.Run("TruncatedDump", s.truncated)
	t.Run("RestoreIntoNonEmpty", s.nonEmpty)
	t.Run("Leftovers", s.leftovers)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// opts returns scratch options with a unique label for one case.
func (s *suite) opts(t *testing.T, what string) dbx.ScratchOptions {
	o := s.scratch
	o.Label = s.scratch.Label + what + "-" + randHex(4)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	return o
}

func (s *suite) newScratch(t *testing.T, o dbx.ScratchOptions) *dbx.Scratch {
	t.Helper()
	sc, err := s.e.Scratch(ctxT(t), o)
	if err != nil {
		t.Fatalf("scratch (%s): %v", o.Kind, err)
	}
	t.Cleanup(func() {
		if err := sc.Destroy(context.Background()); err != nil {
			t.Errorf("destroy scratch: %v", err)
		}
	})
	if strings.Contains(sc.Description, password(sc.URL)) && password(sc.URL) != "" {
		t.Errorf("scratch description %q shows the password", sc.Description)
	}
	return sc
}

func (s *suite) dump(t *testing.T, src string, opts dbx.DumpOptions) (*dbx.Dump, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := s.e.Dump(ctxT(t), src, dir, opts)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return d, dir
}

// count finds a table's count whatever the engine's key style (orders or
// public.orders).
func count(m map[string]int64, table string) (int64, bool) {
	for k, v := range m {
		if k == table || strings.HasSuffix(k, "."+table) {
			return v, true
		}
	}
	return 0, false
}

var pwRE = regexp.MustCompile(`^[^:@/()]*:([^@]+)@`)

// password extracts the password of a URL or a go-sql-driver DSN.
func password(raw string) string {
	if strings.Contains(raw, "://") {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			pw, _ := u.User.Password()
			return pw
		}
		return ""
	}
	if m := pwRE.FindStringSubmatch(raw); m != nil {
		return m[1]
	}
	return ""
}

func noSecret(t *testing.T, what string, cmds []string, urls ...string) {
	t.Helper()
	if len(cmds) == 0 {
		t.Errorf("%s: no commands recorded", what)
	}
	for _, u := range urls {
		pw := password(u)
		if pw == "" {
			continue
		}
		for _, c := range cmds {
			if strings.Contains(c, pw) {
				t.Errorf("%s: command shows the password: %s", what, c)
			}
		}
	}
}

func (s *suite) roundTrip(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	src := s.source(t)
	Seed(t, s.e, src)

	var mu sync.Mutex
	var progress []int64
	before := time.Now()
	d, dir := s.dump(t, src, dbx.DumpOptions{Freshness: FreshnessQuery, Jobs: 2, Progress: func(n int64) {
		mu.Lock()
		progress = append(progress, n)
		mu.Unlock()
	}})
	after := time.Now()

	if d.Engine != s.e.Name() || d.Format == "" || d.ServerVersion == "" {
		t.Errorf("dump engine %q format %q server version %q", d.Engine, d.Format, d.ServerVersion)
	}
	if n, _ := count(d.RowCounts, "customers"); n != Customers {
		t.Errorf("dump row count customers = %d, want %d (all: %v)", n, Customers, d.RowCounts)
	}
	if n, _ := count(d.RowCounts, "orders"); n != Orders {
		t.Errorf("dump row count orders = %d, want %d (all: %v)", n, Orders, d.RowCounts)
	}
	if len(d.RowCounts) != 2 {
		t.Errorf("dump row counts %v: want the two tables only (not views)", d.RowCounts)
	}
	if d.Freshness != NewestSeeded {
		t.Errorf("dump freshness = %q, want %q", d.Freshness, NewestSeeded)
	}
	if d.SnapshotTime.Location() != time.UTC || d.SnapshotTime.Before(before.Add(-2*time.Second)) || d.SnapshotTime.After(after.Add(2*time.Second)) {
		t.Errorf("snapshot time %v not within the dump call [%v, %v] (UTC)", d.SnapshotTime, before, after)
	}
	checkFiles(t, d, dir)
	noSecret(t, "dump", d.Commands, src)
	mu.Lock()
	if len(progress) == 0 || progress[len(progress)-1] <= 0 {
		t.Errorf("dump progress: %v, want a final positive byte count", progress)
	}
	mu.Unlock()
	if v, err := s.e.ServerVersion(ctx, src); err != nil || v != d.ServerVersion {
		t.Errorf("server version %q (%v), dump says %q", v, err, d.ServerVersion)
	}

	sc := s.newScratch(t, s.opts(t, "rt"))
	if counts, err := s.e.RowCounts(ctx, sc.URL); err != nil || len(counts) != 0 {
		t.Fatalf("fresh scratch row counts %v (%v), want none", counts, err)
	}
	rep, err := s.e.Restore(ctx, d, dir, sc.URL, dbx.RestoreOptions{Jobs: 2})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(rep.Phases) == 0 || rep.Phases[0].Name != "restore data" || rep.Phases[0].Bytes <= 0 {
		t.Errorf("restore phases %+v: want \"restore data\" first, with bytes", rep.Phases)
	}
	for _, p := range rep.Phases {
		if p.Duration <= 0 {
			t.Errorf("phase %q has no duration", p.Name)
		}
	}
	noSecret(t, "restore", rep.Commands, sc.URL)
	t.Logf("restore phases: %+v", rep.Phases)

	got, err := s.e.RowCounts(ctx, sc.URL)
	if err != nil {
		t.Fatalf("row counts of the restored copy: %v", err)
	}
	if !equalCounts(got, d.RowCounts) {
		t.Errorf("restored row counts %v, dump says %v", got, d.RowCounts)
	}
	if f, err := s.e.QueryValue(ctx, sc.URL, FreshnessQuery); err != nil || f != d.Freshness {
		t.Errorf("restored freshness %q (%v), dump says %q", f, err, d.Freshness)
	}
	want, err := s.e.QueryValue(ctx, src, s.d.checksum)
	if err != nil {
		t.Fatalf("checksum of the source: %v", err)
	}
	if got, err := s.e.QueryValue(ctx, sc.URL, s.d.checksum); err != nil || got != want {
		t.Errorf("restored checksum %s (%v), source %s", short(got), err, short(want))
	}
	// The restored copy is a database like any other: dump it again (its
	// URL may carry a password, which must not reach the commands).
	d2, _ := s.dump(t, sc.URL, dbx.DumpOptions{Freshness: FreshnessQuery})
	noSecret(t, "dump of the scratch", d2.Commands, sc.URL)
	if !equalCounts(d2.RowCounts, d.RowCounts) || d2.Freshness != d.Freshness {
		t.Errorf("dump of the restored copy: counts %v freshness %q; first dump %v %q", d2.RowCounts, d2.Freshness, d.RowCounts, d.Freshness)
	}

	if err := sc.Destroy(ctx); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := sc.Destroy(ctx); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if _, err := s.e.RowCounts(ctx, sc.URL); err == nil {
		t.Errorf("scratch %s still answers after destroy", sc.Description)
	}
}

func short(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("sha256:%x (%d bytes)", h[:8], len(s))
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkFiles checks the dump lists exactly the files in dir, all relative.
func checkFiles(t *testing.T, d *dbx.Dump, dir string) {
	t.Helper()
	if len(d.Files) == 0 {
		t.Fatalf("dump lists no files")
	}
	var onDisk []string
	_ = filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			onDisk = append(onDisk, filepath.ToSlash(rel))
		}
		return nil
	})
	listed := append([]string(nil), d.Files...)
	sort.Strings(listed)
	sort.Strings(onDisk)
	if strings.Join(listed, "\n") != strings.Join(onDisk, "\n") {
		t.Errorf("dump lists files %v, directory holds %v", listed, onDisk)
	}
	for _, f := range d.Files {
		if filepath.IsAbs(f) || strings.HasPrefix(f, "..") {
			t.Errorf("dump file %q is not relative to the dump directory", f)
		}
	}
}

// consistentWhileWriting dumps while another connection inserts orders:
// when the engine says SameSnapshot, the restored copy must have exactly the
// counts and freshness the dump recorded.
func (s *suite) consistentWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	src := s.source(t)
	Seed(t, s.e, src)
	ex := execer(t, s.e)

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for i := Orders + 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			q := fmt.Sprintf("INSERT INTO orders VALUES (%d, %d, 1.00, 'paid', NULL, %s)", i, 1+i%Customers,
				s.d.ts(seedBase.Add(time.Duration(i)*time.Minute)))
			if err := ex.Exec(ctx, src, q); err != nil {
				t.Errorf("concurrent insert: %v", err)
				return
			}
			n++
		}
	}()
	time.Sleep(100 * time.Millisecond)
	d, dir := s.dump(t, src, dbx.DumpOptions{Freshness: FreshnessQuery})
	time.Sleep(100 * time.Millisecond)
	close(stop)
	written := <-done
	t.Logf("%d orders inserted while dumping; dump counted %v, same snapshot %v", written, d.RowCounts, d.SameSnapshot)
	if written == 0 {
		t.Fatalf("the writer wrote nothing; the case proves nothing")
	}

	sc := s.newScratch(t, s.opts(t, "cw"))
	if _, err := s.e.Restore(ctx, d, dir, sc.URL, dbx.RestoreOptions{Jobs: 2}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got, err := s.e.RowCounts(ctx, sc.URL)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := s.e.QueryValue(ctx, sc.URL, FreshnessQuery)
	if err != nil {
		t.Fatal(err)
	}
	if d.SameSnapshot {
		if !equalCounts(got, d.RowCounts) || fresh != d.Freshness {
			t.Errorf("same snapshot claimed, but restored counts %v freshness %q differ from the dump's %v %q", got, fresh, d.RowCounts, d.Freshness)
		}
		return
	}
	// Read just before the dump: the dump may hold a little more, never less.
	o, _ := count(got, "orders")
	do, _ := count(d.RowCounts, "orders")
	if o < do || fresh < d.Freshness {
		t.Errorf("counts read before the dump (%v, %q) exceed the restored copy (%v, %q)", d.RowCounts, d.Freshness, got, fresh)
	}
}

func (s *suite) queryValue(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	src := s.source(t)
	Seed(t, s.e, src)
	for _, c := range []struct{ query, want string }{
		{"SELECT 42", "42"},
		{"SELECT count(*) FROM orders WHERE status = 'refund'", "1000"},
		{"SELECT NULL", ""},
		{"SELECT name FROM customers WHERE id = 1", "O'Brien & Sons #1"},
		{"SELECT min(updated_at) FROM orders", seedBase.Add(time.Minute).Format(time.RFC3339)},
		{"SELECT max(updated_at) FROM orders WHERE id < 0", ""},
	} {
		if got, err := s.e.QueryValue(ctx, src, c.query); err != nil || got != c.want {
			t.Errorf("QueryValue(%q) = %q, %v; want %q", c.query, got, err, c.want)
		}
	}
	for _, q := range []string{
		"SELECT 1, 2",
		"SELECT id FROM orders WHERE id < 3",
		"SELECT id FROM orders WHERE id < 0",
		"SELECT nosuchcolumn FROM orders",
	} {
		if got, err := s.e.QueryValue(ctx, src, q); err == nil {
			t.Errorf("QueryValue(%q) = %q, want an error", q, got)
		} else {
			t.Logf("QueryValue(%q): %v", q, err)
		}
	}
	// QueryValue is read-only.
	if _, err := s.e.QueryValue(ctx, src, "DELETE FROM orders WHERE id = 1"); err == nil {
		t.Errorf("QueryValue ran a DELETE without error")
	}
	if n, _ := s.e.QueryValue(ctx, src, "SELECT count(*) FROM orders"); n != fmt.Sprint(Orders) {
		t.Errorf("orders after a refused DELETE = %s, want %d", n, Orders)
	}
}

func (s *suite) unreachable(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	u := s.d.unreachable(t)
	dir := t.TempDir()
	_, err := s.e.Dump(ctx, u, dir, dbx.DumpOptions{})
	if err == nil {
		t.Fatalf("dump of unreachable %s succeeded", u)
	}
	if !strings.Contains(err.Error(), "nosuchdb") {
		t.Errorf("dump error does not name the database: %v", err)
	}
	t.Logf("dump of an unreachable database: %v", err)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed dump left %d entries in its directory", len(entries))
	}
	for name, f := range map[string]func() error{
		"RowCounts":     func() error { _, err := s.e.RowCounts(ctx, u); return err },
		"QueryValue":    func() error { _, err := s.e.QueryValue(ctx, u, "SELECT 1"); return err },
		"ServerVersion": func() error { _, err := s.e.ServerVersion(ctx, u); return err },
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "nosuchdb") {
			t.Errorf("%s on an unreachable database: %v, want an error naming it", name, err)
		}
	}
}

// truncated cuts the largest dump file in half: the restore must fail.
func (s *suite) truncated(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	src := s.source(t)
	Seed(t, s.e, src)
	d, dir := s.dump(t, src, dbx.DumpOptions{})
	var big string
	var size int64
	for _, f := range d.Files {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			big, size = p, fi.Size()
		}
	}
	if err := os.Truncate(big, size/2); err != nil {
		t.Fatal(err)
	}
	sc := s.newScratch(t, s.opts(t, "tr"))
	_, err := s.e.Restore(ctx, d, dir, sc.URL, dbx.RestoreOptions{Jobs: 2})
	if err == nil {
		t.Fatalf("restore of a dump truncated to %d of %d bytes succeeded", size/2, size)
	}
	t.Logf("restore of a truncated dump: %v", err)
}

// nonEmpty restores twice into the same database: the second restore is
// refused with dbx.ErrNotEmpty and leaves the data as it was.
func (s *suite) nonEmpty(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	src := s.source(t)
	Seed(t, s.e, src)
	d, dir := s.dump(t, src, dbx.DumpOptions{})
	sc := s.newScratch(t, s.opts(t, "ne"))
	if _, err := s.e.Restore(ctx, d, dir, sc.URL, dbx.RestoreOptions{}); err != nil {
		t.Fatalf("first restore: %v", err)
	}
	_, err := s.e.Restore(ctx, d, dir, sc.URL, dbx.RestoreOptions{})
	if !errors.Is(err, dbx.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty database: %v, want dbx.ErrNotEmpty", err)
	}
	t.Logf("restore into a non-empty database: %v", err)
	if got, err := s.e.RowCounts(ctx, sc.URL); err != nil || !equalCounts(got, d.RowCounts) {
		t.Errorf("after the refused restore: counts %v (%v), want %v", got, err, d.RowCounts)
	}
}

// leftovers leaks one scratch, keeps another, and checks Leftovers removes
// exactly the leaked one.
func (s *suite) leftovers(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	o := s.opts(t, "lo")
	prefix := o.Label + "-"
	leakOpts, keepOpts := o, o
	leakOpts.Label = prefix + "leaked"
	keepOpts.Label = prefix + "kept"
	leaked, err := s.e.Scratch(ctx, leakOpts) // never destroyed: a crash
	if err != nil {
		t.Fatalf("scratch: %v", err)
	}
	kept := s.newScratch(t, keepOpts)
	if err := execer(t, s.e).Exec(ctx, leaked.URL, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}

	find := o
	find.Label = prefix
	removed, err := s.e.Leftovers(ctx, find, map[string]bool{keepOpts.Label: true})
	if err != nil {
		t.Fatalf("leftovers: %v", err)
	}
	t.Logf("leftovers removed %v", removed)
	if len(removed) != 1 || !strings.Contains(removed[0], leakOpts.Label) {
		t.Errorf("leftovers removed %v, want only %s", removed, leakOpts.Label)
	}
	if _, err := s.e.RowCounts(ctx, leaked.URL); err == nil {
		t.Errorf("leaked scratch %s still answers", leaked.Description)
	}
	if _, err := s.e.RowCounts(ctx, kept.URL); err != nil {
		t.Errorf("kept scratch was harmed: %v", err)
	}
	if again, err := s.e.Leftovers(ctx, find, map[string]bool{keepOpts.Label: true}); err != nil || len(again) != 0 {
		t.Errorf("second leftovers run removed %v (%v), want nothing", again, err)
	}
	if _, err := s.e.Leftovers(ctx, dbx.ScratchOptions{Kind: o.Kind, Dir: o.Dir, ServerURL: o.ServerURL}, nil); err == nil {
		t.Errorf("leftovers with an empty prefix succeeded; it must refuse to match everything")
	}
}
