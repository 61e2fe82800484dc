package probe

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

func TestProgramCache(t *testing.T) {
	t.Parallel()
	pc := NewProgramCache()
	const src = "status == 200 && duration < 800ms"
	p1, err := pc.compile(config.ScopeHTTP, src)
	if err != nil || p1 == nil {
		t.Fatalf("compile = %v, %v", p1, err)
	}
	if p2, _ := pc.compile(config.ScopeHTTP, src); p2 != p1 {
		t.Error("second compile of the same expression was not served from the cache")
	}
	// The scope is part of the key: a step's environment differs.
	if p3, _ := pc.compile(config.ScopeStep, src); p3 == p1 {
		t.Error("an expression compiled for another scope was served from the cache")
	}
	// An invalid expression stays invalid.
	if _, err := pc.compile(config.ScopeTCP, "status == 200"); err == nil {
		t.Error("tcp assertion on status compiled")
	}
	if _, err := pc.compile(config.ScopeTCP, "status == 200"); err == nil {
		t.Error("cached tcp assertion on status compiled")
	}
	if p, err := pc.compile(config.ScopeHTTP, ""); p != nil || err != nil {
		t.Errorf("empty assertion = %v, %v; want none", p, err)
	}
	if !pc.assertUses("json.ok == true", "json") || pc.assertUses(src, "json") || !pc.assertUses("json.ok == true", "json") {
		t.Error("assertUses through the cache is wrong")
	}
	// A nil cache compiles each time.
	var none *ProgramCache
	if p, err := none.compile(config.ScopeHTTP, src); p == nil || err != nil || p == p1 {
		t.Errorf("nil cache compile = %v, %v", p, err)
	}
	if !none.assertUses("json.ok", "json") {
		t.Error("nil cache assertUses is wrong")
	}
}

func TestProgramCacheConcurrent(t *testing.T) {
	t.Parallel()
	pc := NewProgramCache()
	ex := exchange{status: 200, headers: http.Header{}, body: []byte(`{"items":[1]}`), duration: time.Millisecond}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				prog, err := pc.compile(config.ScopeHTTP, "status == 200 && json.items.size() > 0")
				if err != nil {
					t.Error(err)
					return
				}
				if st, msg := check(ex, prog, "status == 200 && json.items.size() > 0", nil, pc); st != Up {
					t.Errorf("check = %s %s", st, msg)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestProgramCacheBounded(t *testing.T) {
	t.Parallel()
	pc := NewProgramCache()
	for i := range maxCachedPrograms + 10 {
		if _, err := pc.compile(config.ScopeHTTP, "status == "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(pc.progs); n > maxCachedPrograms {
		t.Errorf("cache holds %d programs, more than %d", n, maxCachedPrograms)
	}
}

// BenchmarkHTTPAssertion measures what one http probe run spends on its
// assertion: compiling it (nocache: every run; cache: once) and
// evaluating it against a JSON response.
func BenchmarkHTTPAssertion(b *testing.B) {
	const src = `status == 200 && duration < 800ms && headers["content-type"] == "application/json" && json.items.size() > 0`
	ex := exchange{
		status:   200,
		headers:  http.Header{"Content-Type": {"application/json"}},
		body:     []byte(`{"items":[{"id":1},{"id":2}],"ok":true}`),
		duration: 120 * time.Millisecond,
	}
	for _, bc := range []struct {
		name string
		pc   *ProgramCache
	}{{"nocache", nil}, {"cache", NewProgramCache()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				prog, err := bc.pc.compile(config.ScopeHTTP, src)
				if err != nil {
					b.Fatal(err)
				}
				if st, msg := check(ex, prog, src, nil, bc.pc); st != Up {
					b.Fatalf("check = %s %s", st, msg)
				}
			}
		})
	}
}

// The Recorder's jobs compile an assertion once, across runs and reloads.
func TestRecorderSharesPrograms(t *testing.T) {
	t.Parallel()
	cfg, err := parse(t, `- {name: db, type: tcp, address: "127.0.0.1:1", timeout: 1s, assert: "duration < 5s"}`)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, j := range rec.Jobs(cfg, Options{}) {
			j.Run(t.Context())
		}
	}
	rec.programs.mu.Lock()
	n := len(rec.programs.progs)
	rec.programs.mu.Unlock()
	if n != 1 {
		t.Errorf("recorder cache holds %d programs, want 1", n)
	}
}
