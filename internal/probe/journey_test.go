package probe

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shopAPI is a small stateful API: login sets a session cookie and returns
// a token; carts need both; deleting a cart is the cleanup.
type shopAPI struct {
	mu    sync.Mutex
	carts map[string]bool
}

func (s *shopAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "sess-1", Path: "/"})
		w.Header().Set("X-Request-Id", "req-42")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token": "tok-secret-99", "user": {"id": 5}}`)
	})
	auth := func(r *http.Request) bool {
		c, err := r.Cookie("session")
		return err == nil && c.Value == "sess-1" && r.Header.Get("Authorization") == "Bearer tok-secret-99"
	}
	mux.HandleFunc("POST /carts", func(w http.ResponseWriter, r *http.Request) {
		if !auth(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		s.carts["c-1"] = true
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"cart": map[string]any{"id": "c-1", "items": []any{}}})
	})
	mux.HandleFunc("GET /carts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "c-1" && r.URL.Query().Get("broken") != "" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, `<p>cart %s ready</p>`, r.PathValue("id"))
	})
	mux.HandleFunc("DELETE /carts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !auth(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		delete(s.carts, r.PathValue("id"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func journeyYAML(base, getQuery string) string {
	return fmt.Sprintf(`- name: checkout
  type: journey
  steps:
    - {name: login, method: POST, url: "%[1]s/login", extract: {token: "json:token", uid: "json:user.id", rid: "header:X-Request-Id"}, assert: "status == 200 && json.user.id == 5"}
    - {name: cart, method: POST, url: "%[1]s/carts", headers: {Authorization: "Bearer ${token}"}, extract: {cart: "json:cart.id"}, assert: "status == 201 && json.cart.items.size() == 0 && vars.uid == '5'"}
    - {name: view, url: "%[1]s/carts/${cart}%[2]s", extract: {state: "regex:cart \\S+ (\\w+)"}, assert: "body contains 'ready'"}
  cleanup:
    - {name: delete, method: DELETE, url: "%[1]s/carts/${cart}", headers: {Authorization: "Bearer ${token}"}, assert: "status == 204"}`, base, getQuery)
}

func TestJourney(t *testing.T) {
	t.Parallel()
	api := &shopAPI{carts: map[string]bool{}}
	srv := httptest.NewServer(api.handler())
	t.Cleanup(srv.Close)

	res := run(t, loadProbe(t, journeyYAML(srv.URL, "")), Options{})
	wantStatus(t, res, Up, "")
	var names []string
	for _, s := range res.Steps {
		names = append(names, fmt.Sprintf("%s:%s", s.Name, s.Status))
		if s.Phases.Total <= 0 {
			t.Errorf("step %s has no timing", s.Name)
		}
	}
	if got := strings.Join(names, " "); got != "login:up cart:up view:up delete:up" {
		t.Errorf("steps = %s", got)
	}
	if !res.Steps[3].Cleanup || len(api.carts) != 0 {
		t.Errorf("cleanup did not run: carts %v", api.carts)
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), "tok-secret-99") {
		t.Errorf("result leaks the extracted token: %s", b)
	}
}

func TestJourneyFailureRunsCleanup(t *testing.T) {
	t.Parallel()
	api := &shopAPI{carts: map[string]bool{}}
	srv := httptest.NewServer(api.handler())
	t.Cleanup(srv.Close)

	res := run(t, loadProbe(t, journeyYAML(srv.URL, "?broken=1")), Options{})
	wantStatus(t, res, Down, "step view: assertion failed: body contains 'ready'")
	if len(res.Steps) != 4 || res.Steps[2].Status != Down || res.Steps[2].Code != 500 || res.Steps[3].Status != Up || !res.Steps[3].Cleanup {
		t.Errorf("steps = %+v, want view down and the cleanup up", res.Steps)
	}
	if len(api.carts) != 0 {
		t.Errorf("cleanup did not delete the cart: %v", api.carts)
	}
}

func TestJourneyStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer((&shopAPI{carts: map[string]bool{}}).handler())
	t.Cleanup(srv.Close)
	p := loadProbe(t, fmt.Sprintf(`- name: j
  type: journey
  steps:
    - {name: login, method: POST, url: "%[1]s/login", extract: {missing: "json:nope.deeper"}}
    - {name: next, url: "%[1]s/carts/${missing}"}`, srv.URL))
	res := run(t, p, Options{})
	wantStatus(t, res, Down, `step login: extract missing: JSON path nope.deeper: no key "nope"`)
	if len(res.Steps) != 1 {
		t.Errorf("ran %d steps, want 1", len(res.Steps))
	}
}

func TestJourneyTimeoutRunsCleanup(t *testing.T) {
	t.Parallel()
	var cleaned atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	mux.HandleFunc("/cleanup", func(w http.ResponseWriter, r *http.Request) { cleaned.Store(true) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p := loadProbe(t, fmt.Sprintf(`- name: j
  type: journey
  timeout: 1s
  steps:
    - {name: hang, url: "%[1]s/hang"}
    - {name: never, url: "%[1]s/cleanup"}
  cleanup:
    - {name: tidy, url: "%[1]s/cleanup"}`, srv.URL))
	start := time.Now()
	res := run(t, p, Options{})
	wantStatus(t, res, Down, "step hang: timed out after 1s")
	if !cleaned.Load() || len(res.Steps) != 2 || res.Steps[1].Name != "tidy" || res.Steps[1].Status != Up {
		t.Errorf("cleanup did not run after the timeout: %+v", res.Steps)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("journey took %s", el)
	}
}
