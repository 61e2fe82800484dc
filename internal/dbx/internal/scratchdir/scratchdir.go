package scratchdir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LabelFile is the name of the label file inside each scratch directory.
const LabelFile = "steward-scratch.json"

// Label is the content of a label file.
type Label struct {
	Label   string    `json:"label"`
	Engine  string    `json:"engine"`
	Parent  string    `json:"parent"` // the directory the caller asked for
	Created time.Time `json:"created"`
	// Extra lists paths outside the directory to remove with it.
	Extra []string `json:"extra,omitempty"`
}

// Found is a labelled scratch directory.
type Found struct {
	Dir   string
	Label Label
}

// ValidateLabel checks that label is usable as a directory, file and
// database name on every engine.
func ValidateLabel(label string, maxLen int) error {
	if label == "" {
		return errors.New("scratch label is empty")
	}
	if len(label) > maxLen {
		return fmt.Errorf("scratch label %q is %d bytes long; at most %d fit a database name", label, len(label), maxLen)
	}
	for _, r := range label {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("scratch label %q: only a-z, 0-9, - and _ are allowed", label)
		}
	}
	return nil
}

// Create makes a new directory under base named after the label and writes
// its label file. parent is the directory the caller asked for (it differs
// from base when the engine had to place the directory elsewhere).
func Create(base, parent, engine, label string) (string, error) {
	dir, err := os.MkdirTemp(base, label+"-")
	if err != nil {
		return "", fmt.Errorf("create scratch directory: %w", err)
	}
	l := Label{Label: label, Engine: engine, Parent: parent, Created: time.Now().UTC()}
	if err := WriteLabel(dir, l); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// WriteLabel (re)writes the label file of dir.
func WriteLabel(dir string, l Label) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, LabelFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write scratch label: %w", err)
	}
	return nil
}

// Find returns the scratch directories directly under base that belong to
// engine, whose label starts with prefix and, when parent is not empty, were
// asked for under parent.
func Find(base, parent, engine, prefix string) ([]Found, error) {
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan scratch directory: %w", err)
	}
	var found []Found
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, LabelFile))
		if err != nil {
			continue // not ours
		}
		var l Label
		if json.Unmarshal(b, &l) != nil || l.Engine != engine || !strings.HasPrefix(l.Label, prefix) {
			continue
		}
		if parent != "" && filepath.Clean(l.Parent) != filepath.Clean(parent) {
			continue
		}
		found = append(found, Found{Dir: dir, Label: l})
	}
	return found, nil
}

// Remove deletes a scratch directory and the extra paths its label names.
func Remove(f Found) error {
	var errs []error
	for _, p := range f.Label.Extra {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(f.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ReadPID reads the process id on the first line of a pid file; 0 when the
// file does not exist.
func ReadPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s: bad pid %q", path, line)
	}
	return pid, nil
}

// RunsIn reports whether process pid is alive with its working directory at
// dir (database servers chdir into their data directory), so a stale pid
// file never makes us signal an unrelated process.
func RunsIn(pid int, dir string) bool {
	if !alive(pid) {
		return false
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return false
	}
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		want = dir
	}
	return filepath.Clean(cwd) == filepath.Clean(want)
}

// Kill sends sig to pid and waits until the process is gone (or a zombie).
func Kill(ctx context.Context, pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process %d: %w", pid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d did not exit: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
