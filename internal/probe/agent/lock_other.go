//go:build !unix

package agent

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir creates dir; without flock, it cannot keep a second agent out.
func lockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
}
