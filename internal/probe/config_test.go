package probe

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	p := loadProbe(t, `- {name: home, type: http, url: "https://shop.example.com/", assert: "status == 200 && duration < 800ms && json.items.size() > 0"}`)
	if p.IntervalDuration() != 30*time.Second || p.TimeoutDuration() != 10*time.Second {
		t.Errorf("interval %s timeout %s, want 30s and 10s", p.IntervalDuration(), p.TimeoutDuration())
	}
	if p.MaxBody != 1<<20 || p.FollowRedirects != 10 {
		t.Errorf("max_body %d follow_redirects %d, want 1 MiB and 10", p.MaxBody, p.FollowRedirects)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, probes string
		want         []string
	}{
		{"bad assert", `- {name: home, type: http, url: "http://127.0.0.1/", assert: "status == 200 &&"}`,
			[]string{"steward.yaml:4:68: invalid assert expression at line 1, column 16 of the expression: unexpected token EOF"}},
		{"unknown variable", `- {name: home, type: http, url: "http://127.0.0.1/", assert: "days_left > 3"}`,
			[]string{"invalid assert expression at line 1, column 1", "unknown name days_left"}},
		{"not bool", `- {name: home, type: http, url: "http://127.0.0.1/", assert: "status + 1"}`,
			[]string{"invalid assert expression"}},
		{"missing url", `- {name: home, type: http}`, []string{"missing url"}},
		{"bad type", `- {name: home, type: htp}`, []string{`invalid type "htp"`, `did you mean "http"`}},
		{"foreign key", `- {name: home, type: http, url: "http://127.0.0.1/", address: "x:1"}`,
			[]string{"address does not apply to http probes (only to tcp, tls)"}},
		{"timeout", `- {name: home, type: tcp, address: "127.0.0.1:1", interval: 5s, timeout: 10s}`,
			[]string{"timeout 10s is longer than interval 5s"}},
		{"duplicate", "- {name: a, type: tcp, address: \"127.0.0.1:1\"}\n- {name: a, type: tcp, address: \"127.0.0.1:1\"}",
			[]string{`duplicate probe "a"`}},
		{"inline bearer", `- {name: a, type: http, url: "http://127.0.0.1/", bearer_token: abc}`,
			[]string{"inline secret in bearer_token"}},
		{"inline url password", `- {name: a, type: http, url: "http://u:pw@127.0.0.1/"}`,
			[]string{"inline password in url"}},
		{"ratelimit non loopback", `- {name: a, type: ratelimit, url: "https://shop.example.com/", burst: 10, expect_throttled_after: 5}`,
			[]string{"not loopback; list it under allowed_hosts"}},
		{"ratelimit burst", `- {name: a, type: ratelimit, url: "http://127.0.0.1/", burst: 501, expect_throttled_after: 5}`,
			[]string{"burst must be between 0 and 500, got 501"}},
		{"ratelimit threshold", `- {name: a, type: ratelimit, url: "http://127.0.0.1/", burst: 5, expect_throttled_after: 5}`,
			[]string{"expect_throttled_after 5 must be less than burst 5"}},
		{"dns record type", `- {name: a, type: dns, query: shop.test, record_type: SRV}`, []string{`invalid record_type "SRV"`}},
		{"dns resolver", `- {name: a, type: dns, query: shop.test, resolver: "127.0.0.1"}`, []string{"invalid resolver"}},
		{"journey var", "- name: j\n  type: journey\n  steps:\n    - {name: one, url: \"http://127.0.0.1/${token}\"}",
			[]string{"uses ${token}, which no earlier step extracts"}},
		{"journey extract", "- name: j\n  type: journey\n  steps:\n    - {name: one, url: \"http://127.0.0.1/\", extract: {t: \"xpath:/a\"}}",
			[]string{`unknown kind "xpath"`}},
		{"journey no steps", "- {name: j, type: journey}", []string{`journey "j" has no steps`}},
		{"redirects", `- {name: a, type: http, url: "http://127.0.0.1/", follow_redirects: 11}`,
			[]string{"follow_redirects must be between 0 and 10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tt.probes)
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want config errors", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("errors:\n%v\nwant one containing %q", err, w)
				}
			}
			for _, e := range errs {
				if e.Line == 0 {
					t.Errorf("error without position: %v", e)
				}
			}
		})
	}
}

func TestCompileAssert(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		`status == 200 && duration < 800ms`,
		`duration < 1m30s && body contains "ok"`,
		`json.items.size() > 0 && headers["content-type"] startsWith "application/json"`,
		`body == "800ms"`, // not a literal inside a string
	} {
		if _, err := config.CompileAssert(config.ScopeHTTP, src); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
	_, err := config.CompileAssert(config.ScopeHTTP, "duration < 800ms &&\n  bogus == 1")
	var ae *config.AssertError
	if !errors.As(err, &ae) || ae.Line != 2 || ae.Col != 3 {
		t.Errorf("err = %#v, want line 2 column 3", err)
	}
	// A position after a rewritten literal maps back to the source.
	_, err = config.CompileAssert(config.ScopeHTTP, "duration < 800ms && nope")
	if !errors.As(err, &ae) || ae.Col != 21 {
		t.Errorf("err = %#v, want column 21", err)
	}
}

func FuzzCompileAssert(f *testing.F) {
	for _, s := range []string{`status == 200 && duration < 800ms`, `json.items.size() > 0`, "body contains '5s'", `1m30s > duration`, "\"unterminated 5ms", `1.5h`, `x.size(1)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		for _, scope := range []config.AssertScope{config.ScopeHTTP, config.ScopeStep, config.ScopeTCP, config.ScopeDNS, config.ScopeTLS} {
			_, err := config.CompileAssert(scope, src)
			var ae *config.AssertError
			if err != nil && (!errors.As(err, &ae) || ae.Line < 1 || ae.Col < 1) {
				t.Fatalf("%q: error without a position: %v", src, err)
			}
		}
	})
}
