package tool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cmd is one run of an external program.
type Cmd struct {
	Path string   // absolute path of the program
	Args []string // arguments, without the program
	// Env holds extra NAME=value pairs. Their values are never shown by
	// String; the names are, so a runbook says which variable to set.
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer // when nil, stdout is captured with stderr
	// StdinName, when set, is rendered as "< StdinName" by String.
	StdinName string
	// Cred runs the program as another user (root dropping privileges).
	Cred *syscall.Credential
}

// String renders the command as a shell line, secrets redacted.
func (c *Cmd) String() string {
	var b strings.Builder
	for _, kv := range c.Env {
		name, _, _ := strings.Cut(kv, "=")
		b.WriteString(name + "=xxxxx ")
	}
	b.WriteString(Quote(c.Path))
	for _, a := range c.Args {
		b.WriteString(" " + Quote(a))
	}
	if c.StdinName != "" {
		b.WriteString(" < " + Quote(c.StdinName))
	}
	return b.String()
}

// Run runs the command and returns what it printed (stderr, and stdout when
// Stdout is nil). A non-zero exit becomes an error that quotes the end of
// that output.
func (c *Cmd) Run(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = c.Stdin
	var out bytes.Buffer
	cmd.Stderr = &out
	cmd.Stdout = &out
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	if c.Cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.Cred}
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return out.Bytes(), fmt.Errorf("%s: %w", filepath.Base(c.Path), ctx.Err())
		}
		return out.Bytes(), fmt.Errorf("%s: %w: %s", filepath.Base(c.Path), err, Tail(out.Bytes(), 2000))
	}
	return out.Bytes(), nil
}

// Tail returns the last n bytes of out, trimmed, for error messages.
func Tail(out []byte, n int) string {
	s := strings.TrimSpace(string(out))
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// Version runs "prog --version" and returns its first line.
func Version(ctx context.Context, path string) (string, error) {
	out, err := (&Cmd{Path: path, Args: []string{"--version"}}).Run(ctx)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// ErrNotFound is returned when no candidate program is installed.
var ErrNotFound = errors.New("program not found")

// Find returns the first of names found in dirs, then on PATH.
func Find(dirs []string, names ...string) (string, error) {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		for _, n := range names {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	where := "PATH"
	if len(dirs) > 0 {
		where = strings.Join(dirs, ", ") + " or PATH"
	}
	return "", fmt.Errorf("%w: %s (looked in %s)", ErrNotFound, strings.Join(names, " or "), where)
}

// Credential returns the credential of the named OS user, to run a program
// as that user.
func Credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// Quote quotes s for a POSIX shell when it needs quoting.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Size returns the total size of the regular files at path (a file or a
// directory tree); missing paths count as zero.
func Size(path string) int64 {
	var n int64
	_ = filepath.WalkDir(path, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// WatchSize calls progress with the size of path every interval until the
// returned stop function is called; stop waits for the watcher to exit and
// reports the final size once more.
func WatchSize(path string, progress func(int64)) (stop func()) {
	if progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(Size(path))
			}
		}
	}()
	return func() {
		close(done)
		<-exited
		progress(Size(path))
	}
}

// CheckEmptyDir makes sure dir exists and holds nothing.
func CheckEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("dump directory: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("dump directory %s is not empty (%s, …)", dir, entries[0].Name())
	}
	return nil
}

// ClearDir removes everything inside dir, leaving dir itself: a failed dump
// leaves nothing behind.
func ClearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// Files lists the regular files under root, relative to base, sorted.
func Files(base, root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(base, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files, err
}

// CountingReader reports the bytes read through it to Progress, at most
// every MiB and at EOF.
type CountingReader struct {
	R        io.Reader
	Progress func(int64)
	n, last  int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.n += int64(n)
	if c.Progress != nil && (c.n-c.last >= 1<<20 || err == io.EOF) {
		c.last = c.n
		c.Progress(c.n)
	}
	return n, err
}

// N returns the bytes read so far.
func (c *CountingReader) N() int64 { return c.n }
