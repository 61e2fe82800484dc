package access

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/store"
)

// Revocation steps, in order.
const (
	StepBlock     = "block_logins"
	StepTerminate = "terminate_sessions"
	StepConfirm   = "confirm_no_sessions"
	StepDrop      = "drop_role"
	StepProve     = "prove"
)

// Steps lists the revocation steps in order.
var Steps = []string{StepBlock, StepTerminate, StepConfirm, StepDrop, StepProve}

// Revocation is the record of a grant's revocation, kept in the grant and
// written to the audit log when it completes.
type Revocation struct {
	Reason      string         `json:"reason,omitempty"`
	By          string         `json:"by,omitempty"`
	RequestedAt time.Time      `json:"requested_at,omitzero"`
	Steps       []Step         `json:"steps,omitempty"`
	Attempts    int            `json:"attempts,omitempty"`
	Errors      []AttemptError `json:"errors,omitempty"`
	CompletedAt *time.Time     `json:"completed_at,omitempty"`
}

// Step is one completed revocation step.
type Step struct {
	Name       string    `json:"name"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Millis     float64   `json:"ms"`
	Detail     string    `json:"detail,omitempty"`
	Attempt    int       `json:"attempt"`
	// Checks is how many times the confirm step looked for sessions.
	Checks int `json:"checks,omitempty"`
}

// AttemptError is a failed revocation attempt.
type AttemptError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Step    string    `json:"step"`
	Error   string    `json:"error"`
}

// Done reports whether the step completed.
func (r Revocation) Done(step string) bool {
	for _, s := range r.Steps {
		if s.Name == step {
			return true
		}
	}
	return false
}

// ParseRevocation reads a grant's revocation record.
func ParseRevocation(s string) Revocation {
	var r Revocation
	_ = json.Unmarshal([]byte(s), &r)
	return r
}

// maxErrors bounds the attempt errors kept in the record.
const maxErrors = 20

func (d *Deps) lease() time.Duration {
	if d.Lease > 0 {
		return d.Lease
	}
	return 2 * time.Minute
}

func (d *Deps) sessionWait() time.Duration {
	if d.SessionWait > 0 {
		return d.SessionWait
	}
	return 10 * time.Second
}

// backoff is the wait before revocation attempt n+1: 1s, 2s, 4s, … 2m.
func backoff(n int) time.Duration {
	b := time.Second << min(max(n-1, 0), 7)
	return min(b, 2*time.Minute)
}

// Revoke revokes a grant now: the requester, or anyone who may operate.
// It returns the grant as it is afterwards; an attempt that failed leaves it
// revoking, retried by the sweeper.
func Revoke(ctx context.Context, d *Deps, actor auth.Principal, id int64, reason string) (store.GrantRow, error) {
	g, err := d.Store.GetGrant(ctx, id)
	if err != nil {
		return g, err
	}
	if actor.User.Name != g.Requester {
		if err := actor.Require(auth.PermOperate); err != nil {
			return g, err
		}
	}
	if reason == "" {
		return g, fmt.Errorf("%w: say why with --reason", ErrNotRevocable)
	}
	now := d.now()
	switch g.State {
	case StateActive:
		if g, err = d.startRevoke(ctx, g, reason, actor.Actor(), now, now); err != nil {
			return g, err
		}
	case StateRevoking:
	default:
		return g, fmt.Errorf("%w: grant %d is %s", ErrNotRevocable, g.ID, g.State)
	}
	p := newPools(d)
	defer p.close()
	ok, err := d.Store.ClaimGrant(ctx, g.ID, StateRevoking, now, now.Add(d.lease()))
	if err != nil {
		return g, err
	}
	if !ok {
		g, _ = d.Store.GetGrant(ctx, g.ID)
		next := ""
		if g.NextAttemptAt != nil {
			next = " at " + g.NextAttemptAt.Format(time.RFC3339)
		}
		return g, fmt.Errorf("%w: grant %d is being revoked by another process or waits for its next attempt%s (last error: %s)", ErrRevocationPending, g.ID, next, g.LastError)
	}
	g, _ = d.Store.GetGrant(ctx, g.ID)
	aerr := d.attempt(ctx, p, g)
	g2, err := d.Store.GetGrant(context.WithoutCancel(ctx), g.ID)
	if err != nil {
		return g, errors.Join(aerr, err)
	}
	return g2, aerr
}

func (d *Deps) startRevoke(ctx context.Context, g store.GrantRow, reason, by string, after, now time.Time) (store.GrantRow, error) {
	rec := ParseRevocation(g.Revocation)
	rec.Reason, rec.By, rec.RequestedAt = reason, by, now
	g.State, g.RevokeAfter, g.NextAttemptAt, g.Revocation = StateRevoking, &after, nil, mustJSON(rec)
	if err := d.Store.UpdateGrant(ctx, g, StateActive); err != nil {
		return g, err
	}
	return g, nil
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	Expired   int      `json:"expired"`   // active grants past expiry moved to revoking
	Recovered int      `json:"recovered"` // grants left issuing by a crash moved to revoking
	Revoked   int      `json:"revoked"`   // revocations completed with proof
	Retrying  int      `json:"retrying"`  // attempts that failed and will be retried
	Errors    []string `json:"errors,omitempty"`
}

// staleIssuing is how long a grant may stay issuing before the sweeper
// decides the process creating it died.
const staleIssuing = 10 * time.Minute

// Sweep revokes every grant that expired by now, resumes revocations that
// are due (failed earlier, or interrupted by a crash), and cleans up
// grants whose issuing was interrupted. Run it at start before serving,
// and every few seconds (SweepArgs).
func Sweep(ctx context.Context, d *Deps, now time.Time) (SweepResult, error) {
	var res SweepResult
	stale := now.Add(-staleIssuing)
	issuing, err := d.Store.ListGrants(ctx, store.GrantFilter{States: []string{StateIssuing}, CreatedBefore: &stale, Limit: 10000, Oldest: true})
	if err != nil {
		return res, err
	}
	for _, g := range issuing {
		rec := Revocation{Reason: "issuing was interrupted (Steward stopped while creating the role)", By: auth.System("sweeper"), RequestedAt: now}
		g.State, g.RevokeAfter, g.Revocation = StateRevoking, &now, mustJSON(rec)
		if err := d.Store.UpdateGrant(ctx, g, StateIssuing); err == nil {
			res.Recovered++
		} else if !errors.Is(err, store.ErrConflict) {
			return res, err
		}
	}
	expired, err := d.Store.ListGrants(ctx, store.GrantFilter{States: []string{StateActive}, ExpiresBy: &now, Limit: 10000, Oldest: true})
	if err != nil {
		return res, err
	}
	for _, g := range expired {
		if _, err := d.startRevoke(ctx, g, "expired", auth.System("sweeper"), g.ExpiresAt, now); err == nil {
			res.Expired++
		} else if !errors.Is(err, store.ErrConflict) {
			return res, err
		}
	}
	due, err := d.Store.ListGrants(ctx, store.GrantFilter{States: []string{StateRevoking}, DueBy: &now, Limit: 10000, Oldest: true})
	if err != nil {
		return res, err
	}
	p := newPools(d)
	defer p.close()
	workers := d.Concurrency
	if workers <= 0 {
		workers = 32
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for _, g := range due {
		until := now.Add(d.lease())
		ok, err := d.Store.ClaimGrant(ctx, g.ID, StateRevoking, now, until)
		if err != nil {
			return res, err
		}
		if !ok {
			continue // another sweeper has it
		}
		g.NextAttemptAt = &until
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := d.attempt(ctx, p, g)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				res.Revoked++
			case errors.As(err, new(crashed)):
			default:
				res.Retrying++
				res.Errors = append(res.Errors, fmt.Sprintf("grant %d: %v", g.ID, err))
			}
		}()
	}
	wg.Wait()
	return res, nil
}

// crashed is what AfterStep returned: the attempt stops as if the process
// died, recording nothing more.
type crashed struct{ err error }

func (c crashed) Error() string { return "stopped after a step: " + c.err.Error() }
func (c crashed) Unwrap() error { return c.err }

// pools shares one admin pool per database during a sweep, and remembers
// a database that could not be reached so 200 grants do not each wait for
// the same connect timeout.
type pools struct {
	d     *Deps
	mu    sync.Mutex
	m     map[string]*sql.DB
	e     map[string]error
	drops map[string]*sync.Mutex
}

func newPools(d *Deps) *pools {
	return &pools{d: d, m: map[string]*sql.DB{}, e: map[string]error{}, drops: map[string]*sync.Mutex{}}
}

// dropLock serializes the drop step per database: on PostgreSQL, DROP OWNED
// of many roles at once rewrites the same ACLs (the database's, the
// tables') and fails with "tuple concurrently updated".
func (p *pools) dropLock(t *target) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.drops[t.key()]
	if m == nil {
		m = &sync.Mutex{}
		p.drops[t.key()] = m
	}
	return m
}

func (p *pools) get(ctx context.Context, t *target) (*sql.DB, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db := p.m[t.key()]; db != nil {
		return db, nil
	}
	if err := p.e[t.key()]; err != nil {
		return nil, err
	}
	conns := p.d.Concurrency
	if conns <= 0 || conns > 16 {
		conns = 16
	}
	db, err := t.openAdmin(ctx, conns)
	if err != nil {
		p.e[t.key()] = err
		return nil, err
	}
	p.m[t.key()] = db
	return db, nil
}

func (p *pools) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, db := range p.m {
		db.Close()
	}
}

// attempt runs the revocation steps not yet done, recording each as it
// completes, then marks the grant revoked. A failure records the error,
// schedules the next attempt with backoff and alerts.
func (d *Deps) attempt(ctx context.Context, p *pools, g store.GrantRow) error {
	rec := ParseRevocation(g.Revocation)
	rec.Attempts++
	g.RevokeAttempts = rec.Attempts
	log := d.log().With("grant", g.ID, "role", g.RoleName, "service", g.Service, "database", g.Database)
	fail := func(step string, err error) error {
		rctx := context.WithoutCancel(ctx)
		now := d.now()
		rec.Errors = append(rec.Errors, AttemptError{At: now, Attempt: rec.Attempts, Step: step, Error: err.Error()})
		if len(rec.Errors) > maxErrors {
			rec.Errors = rec.Errors[len(rec.Errors)-maxErrors:]
		}
		next := now.Add(backoff(rec.Attempts))
		g.LastError, g.NextAttemptAt, g.Revocation = step+": "+err.Error(), &next, mustJSON(rec)
		if uerr := d.Store.UpdateGrant(rctx, g, StateRevoking); uerr != nil {
			return errors.Join(err, uerr)
		}
		log.Error("revocation attempt failed; will retry", "step", step, "attempt", rec.Attempts, "next_attempt_at", next, "err", err)
		if rec.Attempts == 1 || rec.Attempts%10 == 0 {
			_ = d.audit(rctx, auth.System("access"), "access.revoke", fmt.Sprintf("grant:%d", g.ID), "error", map[string]any{
				"role": g.RoleName, "service": g.Service, "database": g.Database, "step": step, "error": err.Error(),
				"attempt": rec.Attempts, "next_attempt_at": store.FormatTime(next)})
		}
		d.notify(rctx, notify.Message{Event: "access.revoke_failed", Severity: notify.SeverityCritical, Service: g.Service,
			Title: fmt.Sprintf("Grant %d NOT revoked: role %s on %s/%s still exists", g.ID, g.RoleName, g.Service, g.Database),
			Text: fmt.Sprintf("Step %s failed (attempt %d): %v\nSteward keeps retrying (next at %s). Requested by %s, reason: %s.",
				step, rec.Attempts, err, next.Format(time.RFC3339), g.Requester, g.Reason),
			Fields: map[string]string{"grant": fmt.Sprint(g.ID), "role": g.RoleName, "step": step}, DedupKey: fmt.Sprintf("grant-%d-revoke", g.ID)})
		return fmt.Errorf("revoke grant %d: %s: %w", g.ID, step, err)
	}
	t, err := d.target(g.Service, g.Database)
	if err != nil {
		return fail("connect", err)
	}
	ops, err := opsFor(g.Engine)
	if err != nil {
		return fail("connect", err)
	}
	admin, err := p.get(ctx, t)
	if err != nil {
		return fail("connect", err)
	}
	steps := []struct {
		name string
		fn   func() (string, int, error)
	}{
		{StepBlock, func() (string, int, error) {
			s, err := ops.block(ctx, admin, g.RoleName)
			return s, 0, err
		}},
		{StepTerminate, func() (string, int, error) {
			n, err := ops.terminate(ctx, admin, g.RoleName)
			return fmt.Sprintf("terminated %d session(s)", n), 0, err
		}},
		{StepConfirm, func() (string, int, error) { return d.confirmNoSessions(ctx, ops, admin, g.RoleName) }},
		{StepDrop, func() (string, int, error) {
			l := p.dropLock(t)
			l.Lock()
			defer l.Unlock()
			var s string
			err := retryTransient(ctx, func() (err error) {
				s, err = ops.drop(ctx, admin, t, g.RoleName)
				return err
			})
			return s, 0, err
		}},
		{StepProve, func() (string, int, error) {
			exists, err := ops.exists(ctx, admin, g.RoleName)
			if err != nil {
				return "", 0, err
			}
			if exists {
				return "", 0, fmt.Errorf("role %s still exists", g.RoleName)
			}
			// The password is not kept, so the attempt uses the role with a
			// throwaway password: what must refuse it is the server, for the
			// role, with an authentication error — not the network.
			refused, detail, err := ops.login(ctx, t, g.RoleName, newPassword())
			if err != nil {
				return "", 0, err
			}
			if !refused {
				return "", 0, fmt.Errorf("a login as %s was accepted after the role was dropped", g.RoleName)
			}
			return "role absent from the catalog; login as " + g.RoleName + " " + detail, 0, nil
		}},
	}
	for _, s := range steps {
		if rec.Done(s.name) {
			continue
		}
		start := d.now()
		detail, checks, err := s.fn()
		if err != nil {
			return fail(s.name, err)
		}
		end := d.now()
		rec.Steps = append(rec.Steps, Step{Name: s.name, StartedAt: start, FinishedAt: end, Millis: float64(end.Sub(start).Microseconds()) / 1000,
			Detail: detail, Attempt: rec.Attempts, Checks: checks})
		g.Revocation = mustJSON(rec)
		if err := d.Store.UpdateGrant(context.WithoutCancel(ctx), g, StateRevoking); err != nil {
			return err
		}
		if d.AfterStep != nil {
			if err := d.AfterStep(g.ID, s.name); err != nil {
				return crashed{err}
			}
		}
	}
	rctx := context.WithoutCancel(ctx)
	now := d.now()
	rec.CompletedAt = &now
	hadErrors := len(rec.Errors) > 0
	g.State, g.RevokedAt, g.NextAttemptAt, g.LastError, g.Revocation = StateRevoked, &now, nil, "", mustJSON(rec)
	if err := d.Store.UpdateGrant(rctx, g, StateRevoking); err != nil {
		return err
	}
	details := map[string]any{"role": g.RoleName, "service": g.Service, "database": g.Database, "profile": g.Profile, "requester": g.Requester,
		"reason": rec.Reason, "by": rec.By, "steps": rec.Steps, "attempts": rec.Attempts, "expires_at": store.FormatTime(g.ExpiresAt),
		"revoked_at": store.FormatTime(now)}
	if g.RevokeAfter != nil {
		details["latency_ms"] = now.Sub(*g.RevokeAfter).Milliseconds()
	}
	if err := d.audit(rctx, auth.System("access"), "access.revoke", fmt.Sprintf("grant:%d", g.ID), "ok", details); err != nil {
		return err
	}
	if hadErrors {
		d.notify(rctx, notify.Message{Event: "access.revoked", Severity: notify.SeverityInfo, Service: g.Service,
			Title: fmt.Sprintf("Grant %d revoked after %d attempts", g.ID, rec.Attempts), DedupKey: fmt.Sprintf("grant-%d-revoke", g.ID), Resolve: true})
	}
	log.Info("grant revoked", "attempts", rec.Attempts)
	return nil
}

// confirmNoSessions checks the role has no session left, terminating again
// and waiting with a short backoff while one remains (a session rolling
// back a large transaction takes a while to go).
func (d *Deps) confirmNoSessions(ctx context.Context, ops engineOps, admin *sql.DB, role string) (string, int, error) {
	deadline := time.Now().Add(d.sessionWait())
	wait := 20 * time.Millisecond
	for checks := 1; ; checks++ {
		n, err := ops.sessions(ctx, admin, role)
		if err != nil {
			return "", checks, err
		}
		if n == 0 {
			return fmt.Sprintf("no session left (%d check(s))", checks), checks, nil
		}
		if time.Now().After(deadline) {
			return "", checks, fmt.Errorf("%d session(s) of %s still open after %s and %d checks", n, role, d.sessionWait(), checks)
		}
		if _, err := ops.terminate(ctx, admin, role); err != nil {
			return "", checks, err
		}
		select {
		case <-ctx.Done():
			return "", checks, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

// retryTransient retries fn a few times, with a short jittered wait, on the
// errors PostgreSQL returns when catalog changes collide (another process
// changing the same ACLs) or a deadlock or serialization failure ends a
// transaction.
func retryTransient(ctx context.Context, fn func() error) error {
	var err error
	for try := range 5 {
		if err = fn(); err == nil || !transient(err) {
			return err
		}
		wait := time.Duration(10*(try+1))*time.Millisecond + time.Duration(rand.Int64N(int64(10*time.Millisecond)))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	return err
}

func transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01" || (pe.Code == "XX000" && strings.Contains(pe.Message, "concurrently"))
	}
	return false
}
