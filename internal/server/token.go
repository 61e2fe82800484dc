package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

// tokenCacheTTL is how long an authenticated token is trusted without
// asking the store again, and so the longest a revoked token, or a disabled
// user's token, keeps working. Never past the token's own expiry.
const tokenCacheTTL = 3 * time.Second

// tokenCacheMax bounds the cache; when full, expired entries are dropped,
// and if that is not enough, all of them.
const tokenCacheMax = 10_000

// cookieName is the cookie the web UI keeps the token in.
const cookieName = "steward_token"

// tokenCache authenticates token secrets through auth.Manager and remembers
// successes, keyed by the token's SHA-256 so that no secret is kept. Misses
// for the same token are collapsed into one store lookup. Failures are never
// cached.
//
// A busy token is revalidated ahead of time: the first request after two
// thirds of the TTL starts a lookup in the background (a goroutine owned by
// the singleflight group, ended by the lookup's 5s timeout) and is answered
// from the cache, so the hot path never waits for the store. A token the
// lookup refuses is dropped at once; an entry is never used past its TTL.
type tokenCache struct {
	auth  *auth.Manager
	store *store.Store
	ttl   time.Duration
	now   func() time.Time

	mu sync.RWMutex
	m  map[string]cachedPrincipal
	sf singleflight.Group
}

type cachedPrincipal struct {
	p         auth.Principal
	refreshAt time.Time // revalidate in the background from here
	until     time.Time // never used from here
}

func newTokenCache(m *auth.Manager, st *store.Store, ttl time.Duration, now func() time.Time) *tokenCache {
	return &tokenCache{auth: m, store: st, ttl: ttl, now: now, m: map[string]cachedPrincipal{}}
}

// authenticate returns the principal of a token secret.
func (c *tokenCache) authenticate(ctx context.Context, secret string) (auth.Principal, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" || !strings.HasPrefix(secret, auth.TokenPrefix) {
		return c.auth.Authenticate(ctx, secret) // explains what is wrong, without a lookup
	}
	key := auth.HashToken(secret)
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	now := c.now()
	if ok && now.Before(e.until) {
		if !now.Before(e.refreshAt) {
			// The result arrives on a buffered channel nobody reads; the
			// lookup updates or drops the entry itself.
			c.sf.DoChan(key, func() (any, error) { return c.lookup(ctx, key, secret) })
		}
		return e.p, nil
	}
	v, err, _ := c.sf.Do(key, func() (any, error) { return c.lookup(ctx, key, secret) })
	if err != nil {
		return auth.Principal{}, err
	}
	return v.(auth.Principal), nil
}

// lookup authenticates against the store and caches or drops the result.
func (c *tokenCache) lookup(ctx context.Context, key, secret string) (auth.Principal, error) {
	// Detached from the request that started it, which may go away while
	// others wait.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	p, err := c.auth.Authenticate(ctx, secret)
	if err == nil {
		var t store.Token
		if t, err = c.store.GetToken(ctx, p.TokenID); err == nil {
			now := c.now()
			e := cachedPrincipal{p: p, refreshAt: now.Add(c.ttl * 2 / 3), until: now.Add(c.ttl)}
			if t.ExpiresAt != nil && t.ExpiresAt.Before(e.until) {
				e.until = *t.ExpiresAt
			}
			c.put(key, e)
			return p, nil
		}
		err = fmt.Errorf("authenticate: %w", err)
	}
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
	return auth.Principal{}, err
}

func (c *tokenCache) put(key string, e cachedPrincipal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= tokenCacheMax {
		now := c.now()
		for k, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= tokenCacheMax {
			clear(c.m)
		}
	}
	c.m[key] = e
}

// requestToken returns the token of a request: the Authorization header's
// bearer token, else the UI cookie, else "". A non-bearer Authorization
// header is an error rather than silently ignored.
func requestToken(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", auth.ErrInvalidToken)
		}
		return strings.TrimSpace(tok), nil
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		return ck.Value, nil
	}
	return "", nil
}

// principal authenticates the request and records its actor for the log.
func (s *Server) principal(r *http.Request) (auth.Principal, error) {
	tok, err := requestToken(r)
	if err != nil {
		return auth.Principal{}, err
	}
	p, err := s.tokens.authenticate(r.Context(), tok)
	if err != nil {
		return auth.Principal{}, err
	}
	infoFrom(r.Context()).actor = p.Actor()
	return p, nil
}
