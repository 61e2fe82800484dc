package probe

import (
	"sync"

	"github.com/expr-lang/expr/vm"
	"github.com/stewardhq/steward/internal/config"
)

// maxCachedPrograms bounds a ProgramCache: a config reload can leave old
// expressions behind, so a full cache starts over rather than grow.
const maxCachedPrograms = 1024

// ProgramCache keeps compiled assert expressions, keyed by scope (the
// environment they are compiled against) and source text, and which
// variables they use, so that a probe run on a schedule compiles its
// assertion once. It is safe for concurrent
// use; compiled programs are immutable and can run concurrently. A nil
// *ProgramCache compiles every time.
type ProgramCache struct {
	mu    sync.Mutex
	progs map[programKey]compiled
	uses  map[usesKey]bool
}

// usesKey asks whether expression src names variable v.
type usesKey struct{ src, v string }

type programKey struct {
	scope config.AssertScope
	src   string
}

// compiled is a compile's outcome; an invalid expression stays invalid, so
// its error is kept too.
type compiled struct {
	prog *vm.Program
	err  error
}

// NewProgramCache returns an empty cache.
func NewProgramCache() *ProgramCache {
	return &ProgramCache{progs: map[programKey]compiled{}, uses: map[usesKey]bool{}}
}

// compile is compile through the cache.
func (c *ProgramCache) compile(scope config.AssertScope, src string) (*vm.Program, error) {
	if c == nil || src == "" {
		return compile(scope, src)
	}
	key := programKey{scope, src}
	c.mu.Lock()
	e, ok := c.progs[key]
	c.mu.Unlock()
	if ok {
		return e.prog, e.err
	}
	// Compile outside the lock; two runs racing on a new expression both
	// compile it, and either result is right.
	prog, err := compile(scope, src)
	c.mu.Lock()
	if len(c.progs) >= maxCachedPrograms {
		clear(c.progs)
	}
	c.progs[key] = compiled{prog, err}
	c.mu.Unlock()
	return prog, err
}

// assertUses is config.AssertUses through the cache.
func (c *ProgramCache) assertUses(src, v string) bool {
	if c == nil {
		return config.AssertUses(src, v)
	}
	key := usesKey{src, v}
	c.mu.Lock()
	used, ok := c.uses[key]
	c.mu.Unlock()
	if ok {
		return used
	}
	used = config.AssertUses(src, v)
	c.mu.Lock()
	if len(c.uses) >= maxCachedPrograms {
		clear(c.uses)
	}
	c.uses[key] = used
	c.mu.Unlock()
	return used
}
