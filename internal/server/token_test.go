package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/auth"
)

// clock is a settable time source for the token cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTokenCacheRevalidation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	c := newTokenCache(b.auth, b.store, 3*time.Second, clk.now)

	secret, tok, err := b.auth.CreateToken(ctx, "local:test", "vic", "cache", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.authenticate(ctx, secret); err != nil || p.User.Name != "vic" {
		t.Fatalf("first: %v %v", p, err)
	}
	if err := b.auth.RevokeToken(ctx, "local:test", tok.ID); err != nil {
		t.Fatal(err)
	}
	// Fresh entry: served from the cache without a lookup.
	clk.add(time.Second)
	if _, err := c.authenticate(ctx, secret); err != nil {
		t.Fatalf("within the fresh period: %v", err)
	}
	// Past two thirds of the TTL: still served, and revalidated in the
	// background, which finds the revocation and drops the entry.
	clk.add(time.Second + time.Millisecond)
	if _, err := c.authenticate(ctx, secret); err != nil {
		t.Fatalf("in the refresh period: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.authenticate(ctx, secret)
		if errors.Is(err, auth.ErrRevokedToken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revocation not seen after background revalidation: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Failures are not cached: a good token works at once.
	good, _, err := b.auth.CreateToken(ctx, "local:test", "vic", "good", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.authenticate(ctx, good); err != nil {
		t.Fatal(err)
	}
}

func TestTokenCacheHonoursExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	c := newTokenCache(b.auth, b.store, time.Hour, clk.now) // a TTL far beyond the token's life
	secret, _, err := b.auth.CreateToken(ctx, "local:test", "vic", "brief", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second)
	time.Sleep(250 * time.Millisecond) // auth.Manager reads the real clock
	if _, err := c.authenticate(ctx, secret); !errors.Is(err, auth.ErrExpiredToken) {
		t.Fatalf("after expiry: %v", err)
	}
}
