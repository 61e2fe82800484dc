package probe

import (
	"net/url"
	"sort"
	"strings"
	"sync"
)

const redacted = "REDACTED"

// redactor removes secret values from text bound for results and logs.
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

func newRedactor() *redactor { return &redactor{} }

// add registers a secret value; values shorter than 4 bytes are too
// likely to occur by chance to be replaced and are not added.
func (r *redactor) add(v string) {
	if len(v) < 4 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = append(r.secrets, v)
	if esc := url.QueryEscape(v); esc != v {
		r.secrets = append(r.secrets, esc)
	}
	if esc := url.PathEscape(v); esc != v {
		r.secrets = append(r.secrets, esc)
	}
	// Longest first, so that a secret containing another is replaced whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

// addURL registers the secrets of a URL: its userinfo password and query
// values whose keys look like credentials.
func (r *redactor) addURL(u *url.URL) {
	if u == nil {
		return
	}
	if pw, ok := u.User.Password(); ok {
		r.add(pw)
	}
	for k, vs := range u.Query() {
		if isSecretKey(k) {
			for _, v := range vs {
				r.add(v)
			}
		}
	}
}

// isSecretKey reports whether a query parameter name looks like it holds
// a credential.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"token", "key", "secret", "password", "passwd", "pwd", "auth", "sig", "signature", "credential", "session", "code"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func (r *redactor) redact(s string) string {
	if s == "" {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, redacted)
	}
	return s
}

// RedactURL returns raw with its password and credential-looking query
// values replaced, for listings; text that is not a URL is returned as is.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw
	}
	r := newRedactor()
	r.addURL(u)
	return r.redact(raw)
}
