package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
)

// CSRF tokens. Every state-changing form of the UI carries a token in the
// hidden field csrfField, and htmx requests send it in csrfHeader (the
// layout puts it in hx-headers on <body>). The token is the HMAC-SHA256 of
// a fixed label keyed with the session cookie's value, so it is bound to
// the cookie, identical on every replica, and useless without the cookie;
// the cookie itself (HttpOnly) cannot be derived from it. It is checked in
// addition to the Origin check of http.CrossOriginProtection and the
// SameSite=Strict cookie. Requests authenticated by an Authorization header
// (the API, scripts) carry no ambient credential and need no token; the
// login form has no cookie yet and relies on the Origin check.
const (
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
	csrfLabel  = "steward-csrf-v1"
)

// errCSRF refuses a cookie-authenticated post without a valid CSRF token.
var errCSRF = errors.New("the form's CSRF token is missing or wrong")

// csrfToken returns the CSRF token for a session cookie value; "" for none.
func csrfToken(cookie string) string {
	if cookie == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte(csrfLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// requestCSRF returns the CSRF token of the request's session cookie; "" when
// the request has none.
func requestCSRF(r *http.Request) string {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return ""
	}
	return csrfToken(ck.Value)
}

// checkCSRF checks the token of a state-changing request that a browser
// authenticates with the session cookie. The form must have been parsed.
// Safe methods and requests with an Authorization header pass.
func checkCSRF(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if r.Header.Get("Authorization") != "" {
		return nil
	}
	want := requestCSRF(r)
	if want == "" {
		return nil // no cookie: nothing ambient to protect; authentication fails later
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	if got == "" || !hmac.Equal([]byte(got), []byte(want)) {
		return errCSRF
	}
	return nil
}
