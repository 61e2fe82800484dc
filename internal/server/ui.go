package server

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

// pageFiles are the UI pages; each is parsed with layout.html.
var pageFiles = map[string][]string{
	"login":     {"login.html"},
	"services":  {"services.html"},
	"service":   {"service.html", "score_parts.html"},
	"drill":     {"drill.html"},
	"audit":     {"audit.html", "audit_rows.html"},
	"error":     {"error.html"},
	"approvals": {"approvals.html", "action_parts.html"},
	"overview":  {"overview.html", "action_parts.html", "score_parts.html"},
	"actions":   {"actions.html", "action_parts.html"},
	"action":    {"action.html", "action_parts.html"},
	"reviews":   {"reviews.html", "action_parts.html"},
	"issued":    {"issued.html"},
	"probes":    {"probes.html"},
	"probe":     {"probe.html", "probe_slo.html"},
	"failures":  {"probe_failures.html"},
}

func parsePages(a *assets) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"asset":       a.url,
		"join":        strings.Join,
		"time":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"short":       shortHash,
		"statusClass": statusClass,
		"ms":          func(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() },
		"pct":         func(f float64) float64 { return f * 100 },
		"trend":       trend,
		"scoreClass":  scoreClass,
	}
	pages := map[string]*template.Template{}
	for name, files := range pageFiles {
		patterns := []string{"web/templates/layout.html"}
		for _, f := range files {
			patterns = append(patterns, "web/templates/"+f)
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, patterns...)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every page template gets.
type page struct {
	Title string
	Nav   string // the active nav entry
	User  string // empty when not logged in
	// Actions shows the approval pages in the nav (a pipeline is wired).
	Actions bool
	// CSRF is the token state-changing forms send back (csrf.go); "" when
	// not logged in.
	CSRF string
	Data any
}

func (s *Server) uiRoutes(mux *http.ServeMux) {
	mux.Handle("GET /static/{file}", s.assets)
	mux.Handle("GET /{$}", s.ui(auth.PermRead, s.overviewPage))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.Handle("GET /services", s.ui(auth.PermRead, s.servicesPage))
	mux.Handle("GET /services/{name}", s.ui(auth.PermRead, s.servicePage))
	mux.Handle("GET /drills/{id}", s.ui(auth.PermRead, s.drillPage))
	mux.Handle("GET /probes", s.ui(auth.PermRead, s.probesPage))
	mux.Handle("GET /probes/{service}/{probe}", s.ui(auth.PermRead, s.probePage))
	mux.Handle("GET /audit", s.ui(auth.PermAuditRead, s.auditPage))
	mux.Handle("GET /audit/rows", s.ui(auth.PermAuditRead, s.auditRows))
	s.actionUIRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, "", fmt.Errorf("page %s: %w", r.URL.Path, store.ErrNotFound))
	})
}

// uiFunc answers an authenticated UI request.
type uiFunc func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// ui authenticates the request by its cookie, sending the browser to /login
// when it has no valid token, checks perm (none when empty) and calls h.
func (s *Server) ui(perm auth.Permission, h uiFunc) http.Handler {
	return s.uiBack(perm, nil, h)
}

// uiBack is ui for form posts: a browser without a valid token logs in and
// comes back to back(r), the page the form is on, rather than to the URL
// the form posts to. nil back: the request's own URL.
func (s *Server) uiBack(perm auth.Permission, back func(*http.Request) string, h uiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principal(r)
		if err != nil {
			if errorStatus(err).Status == http.StatusUnauthorized {
				next := r.URL.RequestURI()
				if back != nil {
					next = back(r)
				}
				s.toLogin(w, r, next, err)
				return
			}
			s.renderError(w, r, "", err)
			return
		}
		if r.Method == http.MethodPost {
			if err := parseForm(w, r); err != nil {
				s.renderError(w, r, p.User.Name, err)
				return
			}
			if err := checkCSRF(r); err != nil {
				s.renderError(w, r, p.User.Name, err)
				return
			}
		}
		if perm != "" {
			if err := p.Require(perm); err != nil {
				s.renderError(w, r, p.User.Name, err)
				return
			}
		}
		if err := h(w, r, p); err != nil {
			s.renderError(w, r, p.User.Name, err)
		}
	})
}

// toLogin sends an unauthenticated browser to /login, remembering where it
// was going (next) and why the token it had (if any) is no longer good.
func (s *Server) toLogin(w http.ResponseWriter, r *http.Request, next string, err error) {
	q := url.Values{"next": {next}}
	if !errors.Is(err, auth.ErrNoToken) {
		clearCookie(w, r)
		switch {
		case errors.Is(err, auth.ErrExpiredToken):
			q.Set("why", "expired")
		case errors.Is(err, auth.ErrRevokedToken):
			q.Set("why", "revoked")
		case errors.Is(err, auth.ErrUserDisabled):
			q.Set("why", "disabled")
		default:
			q.Set("why", "invalid")
		}
	}
	target := "/login?" + q.Encode()
	if r.Header.Get("HX-Request") == "true" {
		// A fragment request: have htmx load the login page as a whole.
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

var whyText = map[string]string{
	"expired":  "Your token has expired. Paste a new one.",
	"revoked":  "Your token was revoked. Paste a new one.",
	"disabled": "Your user is disabled.",
	"invalid":  "The saved token is not valid. Paste a new one.",
}

type loginData struct {
	Next  string
	Error string
	Hint  string
}

// safeNext returns next when it is a path on this site, else / (the
// overview).
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	d := loginData{Next: safeNext(r.URL.Query().Get("next")), Error: whyText[r.URL.Query().Get("why")]}
	s.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: d})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, "", fmt.Errorf("%w: unreadable login form", errBadRequest))
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	p, err := s.tokens.authenticate(r.Context(), secret)
	if err != nil {
		he := s.fail(r, err)
		s.render(w, r, he.Status, "login", page{Title: "Log in", Data: loginData{Next: next, Error: he.Message, Hint: he.Hint}})
		return
	}
	infoFrom(r.Context()).actor = p.Actor()
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName,
		Value:    secret,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	s.log.Info("web login", "actor", p.Actor(), "token_id", p.TokenID)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.renderError(w, r, "", err)
		return
	}
	if err := checkCSRF(r); err != nil {
		s.renderError(w, r, "", err)
		return
	}
	clearCookie(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) servicesPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	snap := s.snap.Load()
	s.render(w, r, http.StatusOK, "services", page{Title: "Services", Nav: "services", User: p.User.Name, Data: snap.services})
	return nil
}

type errorData struct {
	Status  int
	Text    string
	Message string
	Hint    string
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, user string, err error) {
	he := s.fail(r, err)
	if he.Status == statusClientClosed {
		w.WriteHeader(he.Status)
		return
	}
	d := errorData{Status: he.Status, Text: http.StatusText(he.Status), Message: he.Message, Hint: he.Hint}
	if r.Header.Get("HX-Request") == "true" {
		// htmx swaps the answer into part of a page: the error alone.
		s.renderTemplate(w, r, he.Status, "error", "content", page{Title: d.Text, User: user, Data: d})
		return
	}
	s.render(w, r, he.Status, "error", page{Title: d.Text, User: user, Data: d})
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Actions = s.actions != nil
	if p.User != "" {
		p.CSRF = requestCSRF(r)
	}
	s.renderTemplate(w, r, status, name, "layout", p)
}

// renderTemplate executes a template into a buffer first, so that a template
// error is a clean 500 rather than half a page.
func (s *Server) renderTemplate(w http.ResponseWriter, r *http.Request, status int, page, tmpl string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, tmpl, data); err != nil {
		s.log.Error("render page", "page", page, "template", tmpl, "request_id", infoFrom(r.Context()).id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Cookie")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
