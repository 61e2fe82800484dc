//go:build unix

package agent

import (
	"strings"
	"testing"
)

func TestLockDirKeepsASecondAgentOut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another steward agent") {
		t.Fatalf("second lock: %v", err)
	}
	f.Close()
	g, err := lockDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	g.Close()
}
