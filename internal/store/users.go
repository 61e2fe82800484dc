package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// User is a Steward user. Roles are role names (built-in or from config).
type User struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Email      string     `json:"email,omitempty"`
	Roles      []string   `json:"roles"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
}

// Disabled reports whether the user may no longer authenticate.
func (u User) Disabled() bool { return u.DisabledAt != nil }

// HasRole reports whether the user holds role.
func (u User) HasRole(role string) bool {
	for _, r := range u.Roles {
		if r == role {
			return true
		}
	}
	return false
}

const userCols = "id, name, email, roles, created_at, disabled_at"

func scanUser(sc scanner) (User, error) {
	var u User
	var roles, created string
	var disabled sql.NullString
	if err := sc.Scan(&u.ID, &u.Name, &u.Email, &roles, &created, &disabled); err != nil {
		return User{}, err
	}
	if roles != "" {
		u.Roles = strings.Split(roles, ",")
	}
	u.CreatedAt, _ = ParseTime(created)
	u.DisabledAt = nullTime(disabled)
	return u, nil
}

// CreateUser inserts a user; ErrExists when the name is taken.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	u.CreatedAt = u.CreatedAt.UTC().Truncate(time.Microsecond)
	err := s.queryRow(ctx, "INSERT INTO users (name, email, roles, created_at) VALUES (?, ?, ?, ?) RETURNING id",
		u.Name, u.Email, strings.Join(u.Roles, ","), FormatTime(u.CreatedAt)).Scan(&u.ID)
	if isUniqueViolation(err) {
		return User{}, fmt.Errorf("user %q: %w", u.Name, ErrExists)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	return u, nil
}

// GetUser returns the user by name; ErrNotFound when there is none.
func (s *Store) GetUser(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", name, err)
	}
	return u, nil
}

// ListUsers returns all users by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, "SELECT "+userCols+" FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SetUserRoles replaces the user's roles.
func (s *Store) SetUserRoles(ctx context.Context, name string, roles []string) error {
	res, err := s.exec(ctx, "UPDATE users SET roles = ? WHERE name = ?", strings.Join(roles, ","), name)
	if err != nil {
		return fmt.Errorf("set roles of %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return nil
}

// DisableUser marks the user disabled; their tokens stop working at once.
// Disabling an already disabled user keeps the first time.
func (s *Store) DisableUser(ctx context.Context, name string, at time.Time) error {
	res, err := s.exec(ctx, "UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE name = ?", FormatTime(at), name)
	if err != nil {
		return fmt.Errorf("disable user %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return nil
}

// Token is an API token. Only the SHA-256 of the secret is stored.
type Token struct {
	ID         int64      `json:"id"`
	UserID     int64      `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Hash       string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

const tokenCols = "t.id, t.user_id, t.name, t.prefix, t.hash, t.created_at, t.expires_at, t.revoked_at, t.last_used_at"

func scanToken(sc scanner, extra ...any) (Token, error) {
	var t Token
	var created string
	var exp, rev, used sql.NullString
	dest := append([]any{&t.ID, &t.UserID, &t.Name, &t.Prefix, &t.Hash, &created, &exp, &rev, &used}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return Token{}, err
	}
	t.CreatedAt, _ = ParseTime(created)
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = nullTime(exp), nullTime(rev), nullTime(used)
	return t, nil
}

// CreateToken stores a token (its hash) for a user.
func (s *Store) CreateToken(ctx context.Context, t Token) (Token, error) {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	t.CreatedAt = t.CreatedAt.UTC().Truncate(time.Microsecond)
	err := s.queryRow(ctx, "INSERT INTO api_tokens (user_id, name, prefix, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
		t.UserID, t.Name, t.Prefix, t.Hash, FormatTime(t.CreatedAt), timePtrString(t.ExpiresAt)).Scan(&t.ID)
	if isUniqueViolation(err) {
		return Token{}, fmt.Errorf("token: %w", ErrExists)
	}
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", err)
	}
	return t, nil
}

// TokenByHash returns the token with this hash and its user.
func (s *Store) TokenByHash(ctx context.Context, hash string) (Token, User, error) {
	row := s.queryRow(ctx, "SELECT "+tokenCols+", u.id, u.name, u.email, u.roles, u.created_at, u.disabled_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?", hash)
	var u User
	var roles, created string
	var disabled sql.NullString
	t, err := scanToken(row, &u.ID, &u.Name, &u.Email, &roles, &created, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, User{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return Token{}, User{}, fmt.Errorf("look up token: %w", err)
	}
	if roles != "" {
		u.Roles = strings.Split(roles, ",")
	}
	u.CreatedAt, _ = ParseTime(created)
	u.DisabledAt = nullTime(disabled)
	return t, u, nil
}

// GetToken returns a token by id.
func (s *Store) GetToken(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(s.queryRow(ctx, "SELECT "+tokenCols+" FROM api_tokens t WHERE t.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("get token %d: %w", id, err)
	}
	return t, nil
}

// ListTokens returns the tokens of a user, or of everyone when userID is 0.
func (s *Store) ListTokens(ctx context.Context, userID int64) ([]Token, error) {
	q := "SELECT " + tokenCols + " FROM api_tokens t"
	var args []any
	if userID != 0 {
		q += " WHERE t.user_id = ?"
		args = append(args, userID)
	}
	rows, err := s.query(ctx, q+" ORDER BY t.id", args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes a token; revoking twice keeps the first time.
func (s *Store) RevokeToken(ctx context.Context, id int64, at time.Time) error {
	res, err := s.exec(ctx, "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", FormatTime(at), id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	return nil
}

// TouchToken records the token's last use (best effort, at most once a minute).
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	_, err := s.exec(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
		FormatTime(at), id, FormatTime(at.Add(-time.Minute)))
	return err
}
