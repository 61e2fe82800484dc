package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Prometheus returns the path of the prometheus server binary (Debian
// package prometheus): STEWARD_TEST_PROMETHEUS when set, then prometheus on
// PATH, then /usr/bin/prometheus. Without one the test is skipped, or fails
// under CI.
func Prometheus(t testing.TB) string {
	t.Helper()
	return binary(t, "STEWARD_TEST_PROMETHEUS", "prometheus", "apt-get install prometheus")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// programs that cannot listen on port 0 and report the port they got.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return p
}

// binary finds a program: the path in env when set, then name on PATH, then
// /usr/bin/name; install says how to get it.
func binary(t testing.TB, env, name, install string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s=%s: %v", env, p, err)
		}
		return p
	}
	for _, cand := range []string{name, "/usr/bin/" + name} {
		if p, err := exec.LookPath(cand); err == nil {
			return p
		}
	}
	Skip(t, "%s not found on PATH or in /usr/bin (%s, or set %s)", name, install, env)
	return ""
}
