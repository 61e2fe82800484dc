// Command grantbench measures just-in-time access on PostgreSQL against the
// targets of issue 6:
//
//   - issuance: a grant is issued within 500 ms of the final approval. The
//     requester waits the way `steward access request --wait` does (polling
//     the action every 250 ms, the CLI default), then issues the grant in
//     process; the latency runs from the return of the final approval to the
//     return of the issue (role created, recorded, audited). p50/p99 over
//     -grants grants.
//
//   - revocation: with -expire grants expiring at the same instant, each with
//     an open session inside a transaction, every grant is revoked with
//     proof (logins blocked, session terminated, none left, role dropped, a
//     login refused) within 10 s of expiry at p99. The sweeper runs every 5 s
//     (access.SweepInterval) and expiry is set just after a sweep, the worst
//     phase, so the figure includes the wait for the next sweep.
//
//     go run ./bench/grantbench [-grants 50] [-expire 200]
//
// PostgreSQL comes from STEWARD_TEST_POSTGRES or
// postgres://postgres@127.0.0.1:5432/postgres. If that server's
// max_connections cannot hold -expire sessions, a throwaway cluster is
// started with initdb (as the postgres user when run as root) on a free
// port with max_connections = -expire + 200, and removed at the end. The
// Steward store is a SQLite file in a temporary directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/store"
)

func main() {
	grants := flag.Int("grants", 50, "grants issued for the issuance latency")
	expire := flag.Int("expire", 200, "grants expiring together, each with an open session")
	flag.Parse()
	if err := run(context.Background(), *grants, *expire, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "grantbench:", err)
		os.Exit(1)
	}
}

const cfgTmpl = `
users:
  - {name: alice, roles: [operator]}
  - {name: bob, roles: [approver]}
  - {name: carol, roles: [approver]}
services:
  - name: shop
    databases:
      - {name: main, engine: postgres, url: "URL"}
    access:
      - {database: main, profile: read-only, grants: ["SELECT ON ALL TABLES IN SCHEMA public"], max: 4h, connection_limit: 2}
policies:
  approvals:
    - name: access
      match: {action: [access.grant]}
      require: [{approvals: 2, from: ["role:approver"]}]
`

type bench struct {
	p     *action.Pipeline
	d     *access.Deps
	s     *store.Store
	users map[string]auth.Principal
}

func run(ctx context.Context, nGrants, nExpire int, out io.Writer) error {
	base := os.Getenv("STEWARD_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	need := nExpire + 60
	if maxConn, err := maxConnections(ctx, base); err != nil || maxConn < need {
		fmt.Fprintf(out, "server max_connections %d < %d needed (or unreachable: %v): starting a throwaway cluster\n", maxConn, need, err)
		u, stop, err := startCluster(nExpire + 200)
		if err != nil {
			return err
		}
		defer stop()
		base = u
	}
	dbURL, drop, err := scratchDB(ctx, base)
	if err != nil {
		return err
	}
	defer drop()
	dir, err := os.MkdirTemp("", "grantbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, closeStore, err := setup(ctx, dir, dbURL)
	if err != nil {
		return err
	}
	defer closeStore()
	fmt.Fprintf(out, "grantbench: PostgreSQL %s, store SQLite, %d grants for issuance, %d expiring together\n", redact(base), nGrants, nExpire)

	issueLat, execLat, err := b.issuance(ctx, nGrants)
	if err != nil {
		return err
	}
	ip50, ip99, imax := pct(issueLat, 50), pct(issueLat, 99), slices.Max(issueLat)
	fmt.Fprintf(out, "\nissuance, final approval → issued (requester polling every 250 ms):\n  p50 %s  p99 %s  max %s   (issue itself: p50 %s p99 %s)\n",
		ms(ip50), ms(ip99), ms(imax), ms(pct(execLat, 50)), ms(pct(execLat, 99)))
	issueOK := ip99 <= 500*time.Millisecond
	fmt.Fprintf(out, "  target p99 ≤ 500 ms: %s\n", passFail(issueOK))
	// Revoke the issuance grants so the second part starts clean.
	if _, err := access.Sweep(ctx, b.d, time.Now().Add(5*time.Hour)); err != nil {
		return err
	}

	revLat, sweepDur, err := b.revocation(ctx, nExpire)
	if err != nil {
		return err
	}
	rp50, rp99, rmax := pct(revLat, 50), pct(revLat, 99), slices.Max(revLat)
	fmt.Fprintf(out, "\nrevocation of %d grants expiring together, each with an open session, sweeper every %s (expiry just after a sweep):\n",
		nExpire, access.SweepInterval)
	fmt.Fprintf(out, "  expiry → revoked with proof: p50 %s  p99 %s  max %s\n  the sweep that revoked them took %s (%.1f grants/s)\n",
		ms(rp50), ms(rp99), ms(rmax), ms(sweepDur), float64(nExpire)/sweepDur.Seconds())
	revOK := rp99 <= 10*time.Second
	fmt.Fprintf(out, "  target p99 ≤ 10 s: %s\n", passFail(revOK))
	if !issueOK || !revOK {
		return errors.New("a target was missed")
	}
	return nil
}

func setup(ctx context.Context, dir, dbURL string) (*bench, func(), error) {
	cfg, err := config.Parse(filepath.Join(dir, "steward.yaml"), []byte(strings.ReplaceAll(cfgTmpl, "URL", dbURL)), config.LoadOptions{})
	if err != nil {
		return nil, nil, err
	}
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "steward.db"), store.Options{})
	if err != nil {
		return nil, nil, err
	}
	noAudit := func(context.Context, string, string, string, string, map[string]any) error { return nil }
	m := auth.NewManager(s, nil, noAudit)
	b := &bench{s: s, users: map[string]auth.Principal{}}
	for _, u := range cfg.Users {
		su, err := s.CreateUser(ctx, store.User{Name: u.Name, Roles: u.Roles})
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		b.users[u.Name] = m.Principal(su, 0, false)
	}
	b.d = &access.Deps{Config: func() *config.Config { return cfg }, Store: s, Audit: noAudit}
	kinds := action.NewRegistry()
	kinds.Register(access.NewGrantKind(b.d))
	b.p, err = action.New(action.Options{Store: s, Kinds: kinds, Config: cfg, Audit: noAudit})
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return b, func() { s.Close() }, nil
}

// issuance measures final approval → issued for n grants, one at a time.
func (b *bench) issuance(ctx context.Context, n int) (lat, exec []time.Duration, err error) {
	for range n {
		a, err := b.p.Create(ctx, b.users["alice"], access.Request("shop", "main", "read-only", "1h", "bench", "", false))
		if err != nil {
			return nil, nil, err
		}
		if _, _, err := b.p.Approve(ctx, b.users["bob"], a.ID, action.Vote{}); err != nil {
			return nil, nil, err
		}
		// The requester waits like `steward access request --wait`.
		type issued struct {
			at, started time.Time
			err         error
		}
		done := make(chan issued, 1)
		go func() {
			if _, err := access.WaitApproved(ctx, b.p, a.ID, 250*time.Millisecond); err != nil {
				done <- issued{err: err}
				return
			}
			start := time.Now()
			_, cred, err := access.Issue(ctx, b.p, b.users["alice"], a.ID)
			if err == nil && cred == nil {
				err = errors.New("no credential")
			}
			done <- issued{at: time.Now(), started: start, err: err}
		}()
		// A random phase against the requester's polling, like a person.
		time.Sleep(time.Duration(time.Now().UnixNano()%250) * time.Millisecond)
		if _, _, err := b.p.Approve(ctx, b.users["carol"], a.ID, action.Vote{}); err != nil {
			return nil, nil, err
		}
		approved := time.Now()
		r := <-done
		if r.err != nil {
			return nil, nil, r.err
		}
		lat = append(lat, r.at.Sub(approved))
		exec = append(exec, r.at.Sub(r.started))
	}
	return lat, exec, nil
}

// revocation issues n grants, opens a session with each, makes them all
// expire at the same instant just after a sweep, and runs the sweeper every
// SweepInterval until all are revoked.
func (b *bench) revocation(ctx context.Context, n int) ([]time.Duration, time.Duration, error) {
	type held struct {
		id   int64
		conn *pgx.Conn
	}
	var hs []held
	defer func() {
		for _, h := range hs {
			_ = h.conn.Close(context.Background())
		}
	}()
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var firstErr error
	for range n {
		a, err := b.p.Create(ctx, b.users["alice"], access.Request("shop", "main", "read-only", "1h", "bench", "", false))
		if err != nil {
			return nil, 0, err
		}
		for _, u := range []string{"bob", "carol"} {
			if _, _, err := b.p.Approve(ctx, b.users[u], a.ID, action.Vote{}); err != nil {
				return nil, 0, err
			}
		}
		_, cred, err := access.Issue(ctx, b.p, b.users["alice"], a.ID)
		if err != nil {
			return nil, 0, err
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := pgx.Connect(ctx, cred.DSN)
			if err == nil {
				_, err = conn.Exec(ctx, "BEGIN; SELECT count(*) FROM orders")
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = cmp(firstErr, fmt.Errorf("session of grant %d: %w", cred.GrantID, err))
				return
			}
			hs = append(hs, held{cred.GrantID, conn})
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, firstErr
	}
	// Sweeps at t0, t0+5s, …; everything expires 50 ms after the sweep at t0.
	t0 := time.Now()
	if _, err := access.Sweep(ctx, b.d, t0); err != nil {
		return nil, 0, err
	}
	expiry := time.Now().Add(50 * time.Millisecond).UTC()
	for _, h := range hs {
		g, err := b.s.GetGrant(ctx, h.id)
		if err != nil {
			return nil, 0, err
		}
		g.ExpiresAt = expiry
		if err := b.s.UpdateGrant(ctx, g, access.StateActive); err != nil {
			return nil, 0, err
		}
	}
	var sweepDur time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for tick := t0.Add(access.SweepInterval); ; tick = tick.Add(access.SweepInterval) {
		time.Sleep(time.Until(tick))
		start := time.Now()
		res, err := access.Sweep(ctx, b.d, start)
		if err != nil {
			return nil, 0, err
		}
		if res.Revoked > 0 && sweepDur == 0 {
			sweepDur = time.Since(start)
		}
		if len(res.Errors) > 0 {
			fmt.Fprintf(os.Stderr, "sweep errors: %v\n", res.Errors[:min(3, len(res.Errors))])
		}
		left, err := b.s.ListGrants(ctx, store.GrantFilter{States: []string{access.StateActive, access.StateRevoking}, Limit: 10000})
		if err != nil {
			return nil, 0, err
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("%d grants still not revoked after 2 minutes", len(left))
		}
	}
	var lat []time.Duration
	for _, h := range hs {
		g, err := b.s.GetGrant(ctx, h.id)
		if err != nil {
			return nil, 0, err
		}
		if g.State != access.StateRevoked || g.RevokedAt == nil {
			return nil, 0, fmt.Errorf("grant %d is %s", g.ID, g.State)
		}
		if err := h.conn.Ping(ctx); err == nil {
			return nil, 0, fmt.Errorf("the session of grant %d survived", g.ID)
		}
		lat = append(lat, g.RevokedAt.Sub(expiry))
	}
	return lat, sweepDur, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(url)"
	}
	return p.Redacted()
}

func maxConnections(ctx context.Context, u string) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, u)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SHOW max_connections").Scan(&v); err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

func scratchDB(ctx context.Context, base string) (string, func(), error) {
	name := fmt.Sprintf("grantbench_%d", time.Now().UnixNano())
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	dbURL := u.String()
	tc, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", nil, err
	}
	_, err = tc.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, status text); INSERT INTO orders SELECT g, 'paid' FROM generate_series(1, 1000) g")
	tc.Close(ctx)
	if err != nil {
		return "", nil, err
	}
	return dbURL, func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}, nil
}

// startCluster runs initdb and pg_ctl into a temporary directory, as the
// postgres user when run as root (initdb refuses root).
func startCluster(maxConn int) (string, func(), error) {
	bin := ""
	if p, err := exec.LookPath("initdb"); err == nil {
		bin = filepath.Dir(p)
	} else if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
		bin = filepath.Dir(m[len(m)-1])
	}
	if bin == "" {
		return "", nil, errors.New("no initdb found; set STEWARD_TEST_POSTGRES to a server with enough max_connections")
	}
	dir, err := os.MkdirTemp("", "grantbench-pg-")
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	asPG := func(args ...string) *exec.Cmd {
		if os.Geteuid() == 0 {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
		return exec.Command(args[0], args[1:]...)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("chown %s: %v: %s", dir, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asPG(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync").CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=%d -c shared_buffers=64MB", port, dir, maxConn)
	if out, err := asPG(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o", opts, "start").CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	stop := func() {
		_ = asPG(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), stop, nil
}
