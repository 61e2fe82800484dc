package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

type recorded struct{ actor, action, target string }

func setup(t *testing.T) (*auth.Manager, *store.Store, *[]recorded) {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var events []recorded
	m := auth.NewManager(s, map[string][]auth.Permission{"dba": {auth.PermApprove}}, func(_ context.Context, actor, action, target, _ string, _ map[string]any) error {
		events = append(events, recorded{actor, action, target})
		return nil
	})
	return m, s, &events
}

func TestAddUserTokenAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _, events := setup(t)
	u, secret, err := m.AddUser(ctx, "local:root", "alice", "alice@example.com", []string{"operator", "dba"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, auth.TokenPrefix) || len(secret) < 40 {
		t.Fatalf("token %q does not look random", secret)
	}
	p, err := m.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if p.User.ID != u.ID || p.Actor() != "user:alice" {
		t.Fatalf("principal = %+v", p)
	}
	if !p.Can(auth.PermOperate) || !p.Can(auth.PermApprove) || p.Can(auth.PermAdmin) || p.Can(auth.PermAuditRead) {
		t.Fatalf("permissions wrong for operator+dba")
	}
	if err := p.Require(auth.PermAdmin); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("require admin: %v", err)
	}
	want := []string{"user.add", "token.create"}
	if len(*events) != 2 || (*events)[0].action != want[0] || (*events)[1].action != want[1] || (*events)[0].actor != "local:root" {
		t.Fatalf("audit events = %+v, want %v by local:root", *events, want)
	}
}

func TestAuthenticateFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _, _ := setup(t)
	if _, _, err := m.AddUser(ctx, "local:root", "bob", "", []string{"viewer"}, false); err != nil {
		t.Fatal(err)
	}
	revoked, tok, err := m.CreateToken(ctx, "local:root", "bob", "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RevokeToken(ctx, "local:root", tok.ID); err != nil {
		t.Fatal(err)
	}
	expired, _, err := m.CreateToken(ctx, "local:root", "bob", "e", time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, _, err := m.AddUser(ctx, "local:root", "carol", "", nil, false); err != nil {
		t.Fatal(err)
	}
	disabledTok, _, err := m.CreateToken(ctx, "local:root", "carol", "d", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DisableUser(ctx, "local:root", "carol"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, secret string
		want         error
	}{
		{"empty", "", auth.ErrNoToken},
		{"garbage", "hello", auth.ErrInvalidToken},
		{"unknown", auth.TokenPrefix + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", auth.ErrInvalidToken},
		{"revoked", revoked, auth.ErrRevokedToken},
		{"expired", expired, auth.ErrExpiredToken},
		{"disabled user", disabledTok, auth.ErrUserDisabled},
	}
	for _, c := range cases {
		if _, err := m.Authenticate(ctx, c.secret); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, _, err := m.CreateToken(ctx, "local:root", "carol", "x", 0); !errors.Is(err, auth.ErrUserDisabled) {
		t.Errorf("token for disabled user: %v", err)
	}
}

func TestAddUserRejectsBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, s, _ := setup(t)
	if _, _, err := m.AddUser(ctx, "x", "Bad Name", "", nil, false); !errors.Is(err, auth.ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	if _, _, err := m.AddUser(ctx, "x", "dave", "", []string{"superuser"}, false); !errors.Is(err, auth.ErrUnknownRole) {
		t.Errorf("unknown role: %v", err)
	}
	if n, _ := s.CountUsers(ctx); n != 0 {
		t.Errorf("rejected input created %d users", n)
	}
}
