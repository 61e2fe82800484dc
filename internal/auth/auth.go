package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/store"
)

// Built-in roles.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleApprover = "approver"
	RoleAdmin    = "admin"
	RoleAuditor  = "auditor"
)

// BuiltinRoles lists the built-in roles in order of increasing power.
var BuiltinRoles = []string{RoleViewer, RoleOperator, RoleApprover, RoleAuditor, RoleAdmin}

// Permission is something a principal may do.
type Permission string

// Permissions.
const (
	PermRead       Permission = "read"        // services, databases, runs
	PermAuditRead  Permission = "audit.read"  // the audit log
	PermOperate    Permission = "operate"     // run drills, checks, request actions
	PermApprove    Permission = "approve"     // approve or reject actions
	PermAdmin      Permission = "admin"       // users, tokens, configuration
	PermBreakGlass Permission = "break_glass" // execute without approval, loudly
	PermProbeAgent Permission = "probe.agent" // run probes as a remote agent: fetch assignments, upload results
)

// AllPermissions lists every permission, for validation and docs.
var AllPermissions = []Permission{PermRead, PermAuditRead, PermOperate, PermApprove, PermAdmin, PermBreakGlass, PermProbeAgent}

var builtinPerms = map[string][]Permission{
	RoleViewer:   {PermRead},
	RoleOperator: {PermRead, PermOperate},
	RoleApprover: {PermRead, PermApprove},
	RoleAuditor:  {PermRead, PermAuditRead},
	RoleAdmin:    {PermRead, PermAuditRead, PermOperate, PermApprove, PermAdmin, PermProbeAgent},
}

// Sentinel errors.
var (
	ErrNoToken      = errors.New("no API token given")
	ErrInvalidToken = errors.New("invalid API token")
	ErrExpiredToken = errors.New("API token expired")
	ErrRevokedToken = errors.New("API token revoked")
	ErrUserDisabled = errors.New("user disabled")
	ErrForbidden    = errors.New("permission denied")
	ErrBadName      = errors.New("invalid user name")
	ErrUnknownRole  = errors.New("unknown role")
)

// Principal is an authenticated actor.
type Principal struct {
	User    store.User
	TokenID int64
	// Local is set for the CLI working directly on the embedded store
	// without a server: the operating-system user at the keyboard.
	Local bool
	perms map[Permission]bool
}

// Actor is the name audit events record: "user:alice", "local:root", or
// "system:<component>".
func (p Principal) Actor() string {
	if p.Local {
		return "local:" + p.User.Name
	}
	return "user:" + p.User.Name
}

// Can reports whether the principal holds perm.
func (p Principal) Can(perm Permission) bool { return p.perms[perm] }

// Require returns ErrForbidden with a clear message when perm is missing.
func (p Principal) Require(perm Permission) error {
	if p.Can(perm) {
		return nil
	}
	return fmt.Errorf("%w: %s needs the %q permission (roles: %s)", ErrForbidden, p.Actor(), perm, strings.Join(p.User.Roles, ","))
}

// System returns the principal of an internal component, for audit events.
func System(component string) string { return "system:" + component }

// AuditFunc records a state change; the wiring passes the audit log's Append.
type AuditFunc func(ctx context.Context, actor, action, target, outcome string, details map[string]any) error

// Manager creates users and tokens and authenticates requests.
type Manager struct {
	store *store.Store
	// custom maps a role defined in config to its permissions.
	custom map[string][]Permission
	audit  AuditFunc
	now    func() time.Time
}

// NewManager returns a Manager. custom holds roles from config (name to
// permissions); audit may be nil only in tests of this package.
func NewManager(s *store.Store, custom map[string][]Permission, audit AuditFunc) *Manager {
	if audit == nil {
		audit = func(context.Context, string, string, string, string, map[string]any) error { return nil }
	}
	return &Manager{store: s, custom: custom, audit: audit, now: time.Now}
}

// KnownRole reports whether role is built in or defined in config.
func (m *Manager) KnownRole(role string) bool {
	if _, ok := builtinPerms[role]; ok {
		return true
	}
	_, ok := m.custom[role]
	return ok
}

// Principal builds the principal of a user, resolving its permissions.
func (m *Manager) Principal(u store.User, tokenID int64, local bool) Principal {
	p := Principal{User: u, TokenID: tokenID, Local: local, perms: map[Permission]bool{}}
	for _, r := range u.Roles {
		for _, perm := range builtinPerms[r] {
			p.perms[perm] = true
		}
		for _, perm := range m.custom[r] {
			p.perms[perm] = true
		}
	}
	return p
}

// LocalAdmin is the principal of the CLI on the embedded store: the person
// with the store file already holds everything in it.
func (m *Manager) LocalAdmin(osUser string) Principal {
	if osUser == "" {
		osUser = "unknown"
	}
	u := store.User{Name: osUser, Roles: []string{RoleAdmin}}
	p := m.Principal(u, 0, true)
	p.perms[PermBreakGlass] = true
	return p
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// AddUser creates a user with roles and, when withToken, a first API token,
// returned once in plaintext.
func (m *Manager) AddUser(ctx context.Context, actor, name, email string, roles []string, withToken bool) (store.User, string, error) {
	if !nameRE.MatchString(name) {
		return store.User{}, "", fmt.Errorf("%w %q: use 1-64 lowercase letters, digits, '.', '_' or '-'", ErrBadName, name)
	}
	if len(roles) == 0 {
		roles = []string{RoleViewer}
	}
	for _, r := range roles {
		if !m.KnownRole(r) {
			return store.User{}, "", fmt.Errorf("%w %q: built-in roles are %s; define others under roles: in steward.yaml", ErrUnknownRole, r, strings.Join(BuiltinRoles, ", "))
		}
	}
	slices.Sort(roles)
	roles = slices.Compact(roles)
	u, err := m.store.CreateUser(ctx, store.User{Name: name, Email: email, Roles: roles, CreatedAt: m.now()})
	if err != nil {
		return store.User{}, "", err
	}
	if err := m.audit(ctx, actor, "user.add", "user:"+name, "ok", map[string]any{"roles": roles, "email": email}); err != nil {
		return u, "", err
	}
	if !withToken {
		return u, "", nil
	}
	secret, _, err := m.CreateToken(ctx, actor, name, "initial", 0)
	return u, secret, err
}

// SetRoles replaces a user's roles.
func (m *Manager) SetRoles(ctx context.Context, actor, name string, roles []string) error {
	for _, r := range roles {
		if !m.KnownRole(r) {
			return fmt.Errorf("%w %q: built-in roles are %s; define others under roles: in steward.yaml", ErrUnknownRole, r, strings.Join(BuiltinRoles, ", "))
		}
	}
	old, err := m.store.GetUser(ctx, name)
	if err != nil {
		return err
	}
	roles = slices.Clone(roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	if err := m.store.SetUserRoles(ctx, name, roles); err != nil {
		return err
	}
	return m.audit(ctx, actor, "user.roles", "user:"+name, "ok", map[string]any{"from": old.Roles, "to": roles})
}

// DisableUser disables a user; their tokens stop working at once.
func (m *Manager) DisableUser(ctx context.Context, actor, name string) error {
	if err := m.store.DisableUser(ctx, name, m.now()); err != nil {
		return err
	}
	return m.audit(ctx, actor, "user.disable", "user:"+name, "ok", nil)
}

// TokenPrefix starts every Steward API token, so secret scanners can find them.
const TokenPrefix = "stw_"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTokenSecret returns a random token, its display prefix and its hash.
func NewTokenSecret() (secret, prefix, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	secret = TokenPrefix + strings.ToLower(b32.EncodeToString(b))
	return secret, secret[:len(TokenPrefix)+8], HashToken(secret)
}

// HashToken is how tokens are stored: hex SHA-256 of the secret.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CreateToken creates an API token for a user; ttl 0 means no expiry. The
// secret is returned once and never stored.
func (m *Manager) CreateToken(ctx context.Context, actor, userName, tokenName string, ttl time.Duration) (string, store.Token, error) {
	u, err := m.store.GetUser(ctx, userName)
	if err != nil {
		return "", store.Token{}, err
	}
	if u.Disabled() {
		return "", store.Token{}, fmt.Errorf("user %q: %w; enable is not supported, add a new user", userName, ErrUserDisabled)
	}
	secret, prefix, hash := NewTokenSecret()
	t := store.Token{UserID: u.ID, Name: tokenName, Prefix: prefix, Hash: hash, CreatedAt: m.now()}
	if ttl > 0 {
		exp := m.now().Add(ttl).UTC().Truncate(time.Microsecond)
		t.ExpiresAt = &exp
	}
	t, err = m.store.CreateToken(ctx, t)
	if err != nil {
		return "", store.Token{}, err
	}
	details := map[string]any{"token_id": t.ID, "name": tokenName, "prefix": prefix}
	if t.ExpiresAt != nil {
		details["expires_at"] = store.FormatTime(*t.ExpiresAt)
	}
	if err := m.audit(ctx, actor, "token.create", "user:"+userName, "ok", details); err != nil {
		return "", t, err
	}
	return secret, t, nil
}

// RevokeToken revokes a token by id.
func (m *Manager) RevokeToken(ctx context.Context, actor string, id int64) error {
	t, err := m.store.GetToken(ctx, id)
	if err != nil {
		return err
	}
	if err := m.store.RevokeToken(ctx, id, m.now()); err != nil {
		return err
	}
	return m.audit(ctx, actor, "token.revoke", fmt.Sprintf("token:%d", id), "ok", map[string]any{"prefix": t.Prefix, "user_id": t.UserID})
}

// Authenticate turns a token secret into a principal.
func (m *Manager) Authenticate(ctx context.Context, secret string) (Principal, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return Principal{}, ErrNoToken
	}
	if !strings.HasPrefix(secret, TokenPrefix) {
		return Principal{}, fmt.Errorf("%w: Steward tokens start with %q", ErrInvalidToken, TokenPrefix)
	}
	hash := HashToken(secret)
	t, u, err := m.store.TokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrInvalidToken
	}
	if err != nil {
		return Principal{}, err
	}
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 {
		return Principal{}, ErrInvalidToken
	}
	now := m.now()
	switch {
	case t.RevokedAt != nil:
		return Principal{}, fmt.Errorf("%w (token %s, revoked %s)", ErrRevokedToken, t.Prefix, t.RevokedAt.Format(time.RFC3339))
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return Principal{}, fmt.Errorf("%w (token %s, expired %s); create a new one with steward token create", ErrExpiredToken, t.Prefix, t.ExpiresAt.Format(time.RFC3339))
	case u.Disabled():
		return Principal{}, fmt.Errorf("%w: %s", ErrUserDisabled, u.Name)
	}
	_ = m.store.TouchToken(ctx, t.ID, now) // best effort
	return m.Principal(u, t.ID, false), nil
}
