package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// maxFileSize bounds the size of a config file.
const maxFileSize = 8 << 20

// LoadOptions controls Load and Parse.
type LoadOptions struct {
	// ResolveSecrets resolves every secret reference while validating; a
	// missing env var or unreadable file is an error at the position of
	// the reference.
	ResolveSecrets bool
}

// Load reads the config file at path with its includes, fills defaults and
// validates it. On failure the error is an Errors holding every problem found.
func Load(path string, opts LoadOptions) (*Config, error) {
	data, err := readLimited(path, maxFileSize)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("read config: %v", err)}}
	}
	return Parse(path, data, opts)
}

// Parse is Load for a file already in memory; filename names it in errors,
// and includes and relative paths are resolved against its directory.
func Parse(filename string, data []byte, opts LoadOptions) (*Config, error) {
	abs, err := filepath.Abs(filename)
	if err != nil {
		return nil, Errors{{File: filename, Msg: fmt.Sprintf("resolve path: %v", err)}}
	}
	l := &loader{
		opts:     opts,
		mainFile: filename,
		pos:      map[string]pos{},
		seen:     map[string]bool{abs: true},
	}
	cfg := &Config{Path: abs}
	applyDefaults(reflect.ValueOf(cfg).Elem())

	d := newDecoder(filename, nil)
	d.parseFile(data, cfg)
	l.errs = append(l.errs, d.errs...)
	for k, v := range d.pos {
		l.pos[k] = v
	}
	l.includeAll(cfg, filename, cfg.Include, d.pos, []string{abs}, []string{filename})

	if !l.truncated && !d.tooBig {
		// A truncated decode would only add follow-on noise.
		l.normalize(cfg)
		l.validate(cfg)
	}
	if len(l.errs) > 0 {
		return nil, l.errs.sorted()
	}
	for f := range l.seen {
		cfg.Files = append(cfg.Files, f)
	}
	slices.Sort(cfg.Files)
	return cfg, nil
}

// loader holds the state of one Load.
type loader struct {
	opts     LoadOptions
	mainFile string
	errs     Errors
	pos      map[string]pos  // merged path -> position
	seen     map[string]bool // absolute paths of files loaded
	// truncated is set when an included file hit the expansion budget.
	truncated bool
}

func (l *loader) errorf(p pos, format string, args ...any) {
	l.errs = append(l.errs, Error{File: p.File, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)})
}

// at returns the position recorded for path, or for its closest ancestor.
func (l *loader) at(path string) pos {
	for path != "" {
		if p, ok := l.pos[path]; ok {
			return p
		}
		if strings.HasSuffix(path, "]") {
			path = path[:strings.LastIndex(path, "[")]
		} else if i := strings.LastIndex(path, "."); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
	if p, ok := l.pos[""]; ok {
		return p
	}
	return pos{File: l.mainFile}
}

// includedKeys are the top-level keys an included file may set.
var includedKeys = []string{"include", "users", "roles", "services"}

// includeAll loads the files matched by the include patterns of file
// (whose value positions are in filePos), depth first. stack holds the
// absolute paths of the files being included, names their display names.
func (l *loader) includeAll(cfg *Config, file string, patterns []string, filePos map[string]pos, stack, names []string) {
	dir := filepath.Dir(file)
	for i, pattern := range patterns {
		p := filePos[fmt.Sprintf("include[%d]", i)]
		if pattern == "" {
			l.errorf(p, "include must not be empty")
			continue
		}
		target := pattern
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		var matches []string
		if strings.ContainsAny(pattern, "*?[") {
			m, err := filepath.Glob(target)
			if err != nil {
				l.errorf(p, "invalid include pattern %q: %v", pattern, err)
				continue
			}
			matches = m // no match is fine: an empty conf.d is valid
		} else {
			matches = []string{target}
		}
		for _, m := range matches {
			abs, err := filepath.Abs(m)
			if err != nil {
				l.errorf(p, "include %q: %v", pattern, err)
				continue
			}
			if j := slices.Index(stack, abs); j >= 0 {
				cycle := append(slices.Clone(names[j:]), m)
				l.errorf(p, "include cycle: %s", strings.Join(cycle, " -> "))
				continue
			}
			if l.seen[abs] {
				continue // each file is loaded once
			}
			l.seen[abs] = true
			l.includeFile(cfg, m, pattern, p, append(slices.Clone(stack), abs), append(slices.Clone(names), m))
		}
	}
}

// includeFile loads one included file into cfg.
func (l *loader) includeFile(cfg *Config, file, pattern string, p pos, stack, names []string) {
	fi, err := os.Stat(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		l.errorf(p, "include %q: file %s does not exist", pattern, file)
		return
	case err != nil:
		l.errorf(p, "include %q: %v", pattern, err)
		return
	case !fi.Mode().IsRegular():
		l.errorf(p, "include %q: %s is not a regular file", pattern, file)
		return
	}
	data, err := readLimited(file, maxFileSize)
	if err != nil {
		l.errorf(p, "include %q: %v", pattern, err)
		return
	}
	offsets := map[string]int{"users": len(cfg.Users), "roles": len(cfg.Roles), "services": len(cfg.Services)}
	inc := &Config{}
	d := newDecoder(file, offsets)
	d.parseFile(data, inc)
	l.errs = append(l.errs, d.errs...)
	l.truncated = l.truncated || d.tooBig
	for key, kp := range d.keyPos {
		if !slices.Contains(includedKeys, key) {
			l.errorf(kp, "%q is only allowed in the main config file (an included file may set %s)", key, strings.Join(includedKeys, ", "))
		}
	}
	for path, vp := range d.pos {
		if strings.HasPrefix(path, "users[") || strings.HasPrefix(path, "roles[") || strings.HasPrefix(path, "services[") {
			l.pos[path] = vp
		}
	}
	cfg.Users = append(cfg.Users, inc.Users...)
	cfg.Roles = append(cfg.Roles, inc.Roles...)
	cfg.Services = append(cfg.Services, inc.Services...)
	l.includeAll(cfg, file, inc.Include, d.pos, stack, names)
}

// readLimited reads the file at path, failing if it is larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err // callers name the path
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}
