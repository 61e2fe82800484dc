package server

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func mustJSON(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// login posts the token to /login and returns the cookie it sets.
func (b *bundle) login(t *testing.T, token string) (response, *http.Cookie) {
	t.Helper()
	form := url.Values{"token": {token}, "next": {"/audit"}}
	req, err := http.NewRequest("POST", b.ts.URL+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := b.send(t, req)
	for _, c := range r.Cookies() {
		if c.Name == cookieName {
			return r, c
		}
	}
	return r, nil
}

func TestUIRedirectsToLogin(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, path := range []string{"/services", "/services/shop", "/audit", "/audit/rows"} {
		r := b.do(t, "GET", path, "")
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next="+url.QueryEscape(path) {
			t.Errorf("GET %s without cookie: %d Location %q", path, r.StatusCode, r.Header.Get("Location"))
		}
	}
	r := b.do(t, "GET", "/", "")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login?next=%2F" {
		t.Errorf("GET /: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// A stale cookie is cleared and the reason shown.
	r = b.do(t, "GET", "/services", "", "Cookie: "+cookieName+"=stw_bogus")
	if loc := r.Header.Get("Location"); !strings.Contains(loc, "why=invalid") {
		t.Errorf("stale cookie: Location %q", loc)
	}
	r = b.do(t, "GET", "/login?why=invalid&next=/audit", "")
	if !strings.Contains(r.body, "not valid") || !strings.Contains(r.body, `value="/audit"`) {
		t.Errorf("login page: %s", r.body)
	}
	// htmx fragment requests are told to load the login page.
	r = b.do(t, "GET", "/audit/rows", "", "HX-Request: true")
	if r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("HX-Redirect"), "/login?") {
		t.Errorf("htmx without cookie: %d %q", r.StatusCode, r.Header.Get("HX-Redirect"))
	}
}

func TestUILoginLogout(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	r, c := b.login(t, "stw_wrong")
	if r.StatusCode != http.StatusUnauthorized || c != nil || !strings.Contains(r.body, "invalid API token") {
		t.Fatalf("bad login: %d cookie %v\n%s", r.StatusCode, c, r.body)
	}

	r, c = b.login(t, b.auditor)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/audit" {
		t.Fatalf("login: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("login cookie: %+v", c)
	}
	r = b.do(t, "GET", "/services", "", "Cookie: "+c.String())
	if r.StatusCode != 200 || !strings.Contains(r.body, ">aud<") || !strings.Contains(r.body, "Log out") {
		t.Fatalf("services after login: %d\n%s", r.StatusCode, r.body)
	}

	// Cross-origin form posts are refused (CSRF).
	req, _ := http.NewRequest("POST", b.ts.URL+"/login", strings.NewReader("token="+b.admin))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if r := b.send(t, req); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login: %d", r.StatusCode)
	}

	// Logging out needs the CSRF token too.
	r = b.do(t, "POST", "/logout", "", "Cookie: "+c.String())
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "CSRF token is missing or wrong") {
		t.Fatalf("logout without CSRF token: %d\n%s", r.StatusCode, r.body)
	}
	r = b.do(t, "POST", "/logout", "", "Cookie: "+c.String(), csrfHeader+": "+csrfToken(c.Value))
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	var cleared bool
	for _, ck := range r.Cookies() {
		cleared = cleared || (ck.Name == cookieName && ck.MaxAge < 0)
	}
	if !cleared {
		t.Fatal("logout did not clear the cookie")
	}
}

func TestUIPages(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	addEvents(t, b, 120)
	// An event whose fields try to inject markup.
	if err := b.audit(t.Context(), "user:<script>alert(1)</script>", "probe.run", `<img src=x onerror=alert(1)>`, "ok", map[string]any{"k": "<b>"}); err != nil {
		t.Fatal(err)
	}
	cookie := "Cookie: " + cookieName + "=" + b.auditor

	r := b.do(t, "GET", "/services", "", cookie)
	for _, want := range []string{"<h1>Services</h1>", `href="/services/shop"`, "team-billing, alice", "shop-oncall", "main <small>(postgres, replica)</small>", `href="/audit"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/services lacks %q", want)
		}
	}
	h := r.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
		t.Errorf("security headers: %v", h)
	}

	r = b.do(t, "GET", "/services/shop", "", cookie)
	for _, want := range []string{"<h1>shop <span", "The web shop", "env:SHOP_DB_REPLICA", "Hoster NOC", `href="tel:&#43;41%2044%20000%2000%2000"`, "<code>env=prod</code>"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/services/shop lacks %q:\n%s", want, r.body)
		}
	}
	if r := b.do(t, "GET", "/services/nope", "", cookie); r.StatusCode != 404 || !strings.Contains(r.body, `service &#34;nope&#34;`) {
		t.Errorf("/services/nope: %d\n%s", r.StatusCode, r.body)
	}

	rowSeq := regexp.MustCompile(`<tr>\s*<td>(\d+)</td>`)
	r = b.do(t, "GET", "/audit", "", cookie)
	if r.StatusCode != 200 || len(rowSeq.FindAllString(r.body, -1)) != auditPageSize || !strings.Contains(r.body, "drill.run") {
		t.Fatalf("/audit: %d, %d rows\n%s", r.StatusCode, len(rowSeq.FindAllString(r.body, -1)), r.body)
	}
	if strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, "<img src=x") || strings.Contains(r.body, "<b>") {
		t.Fatal("audit page does not escape event fields")
	}
	if !strings.Contains(r.body, "&lt;script&gt;") {
		t.Fatal("escaped actor missing")
	}
	// Follow "load more" to the end; every event appears once.
	seen := map[string]int{}
	more := regexp.MustCompile(`hx-get="(/audit/rows[^"]+)"`)
	body := r.body
	for pages := 0; ; pages++ {
		for _, m := range rowSeq.FindAllStringSubmatch(body, -1) {
			seen[m[1]]++
		}
		m := more.FindStringSubmatch(body)
		if m == nil {
			break
		}
		if pages > 20 {
			t.Fatal("load more does not end")
		}
		next := strings.ReplaceAll(m[1], "&amp;", "&")
		r := b.do(t, "GET", next, "", cookie, "HX-Request: true")
		if r.StatusCode != 200 || strings.Contains(r.body, "<html") {
			t.Fatalf("GET %s: %d, want a rows fragment\n%s", next, r.StatusCode, r.body)
		}
		body = r.body
	}
	total, err := b.store.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(seen)) != total.Seq {
		t.Fatalf("load more showed %d distinct events, the log has %d", len(seen), total.Seq)
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("event %s shown %d times", seq, n)
		}
	}

	r = b.do(t, "GET", "/audit?actor=user:bob&action=drill", "", cookie)
	if strings.Contains(r.body, "<td>user:alice</td>") || !strings.Contains(r.body, "<td>user:bob</td>") || !strings.Contains(r.body, `value="user:bob"`) {
		t.Errorf("filtered audit page:\n%s", r.body)
	}

	// A viewer may not read the audit log.
	r = b.do(t, "GET", "/audit", "", "Cookie: "+cookieName+"="+b.viewer)
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "audit.read") {
		t.Errorf("viewer /audit: %d\n%s", r.StatusCode, r.body)
	}
}

func TestStaticAssets(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, "GET", "/login", "")
	m := regexp.MustCompile(`src="(/static/htmx\.min\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("login page does not load htmx:\n%s", r.body)
	}
	r = b.do(t, "GET", m[1], "")
	if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") ||
		!strings.Contains(r.Header.Get("Content-Type"), "javascript") || len(r.body) < 10_000 {
		t.Fatalf("htmx: %d %v", r.StatusCode, r.Header)
	}
	if r2 := b.do(t, "GET", m[1], "", "If-None-Match: "+r.Header.Get("ETag")); r2.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional asset GET: %d", r2.StatusCode)
	}
	r = b.do(t, "GET", "/static/pico.min.css", "")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") || r.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("pico: %d %v", r.StatusCode, r.Header)
	}
	if r := b.do(t, "GET", "/static/VENDOR.md", ""); r.StatusCode != 404 {
		t.Fatalf("VENDOR.md served: %d", r.StatusCode)
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                     "/",
		"/audit?actor=x":       "/audit?actor=x",
		"//evil.example/":      "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"audit":                "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
