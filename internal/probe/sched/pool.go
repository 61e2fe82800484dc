package sched

import (
	"sync"
	"sync/atomic"
	"time"
)

// occurrence is one due run of a job, queued on its class's pool.
type occurrence struct {
	job       Job
	scheduled time.Time
	busy      *atomic.Bool // shared by all occurrences of the key
}

// pool is a FIFO of due occurrences served by a fixed number of workers.
type pool struct {
	class string
	size  int

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []occurrence
	closed bool
}

func newPool(class string, size int) *pool {
	p := &pool{class: class, size: size}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *pool) push(occs []occurrence) {
	p.mu.Lock()
	p.queue = append(p.queue, occs...)
	p.mu.Unlock()
	// Wake one worker per occurrence, not all of them: a broadcast to a
	// large pool for every batch of due runs is a thundering herd.
	for range min(len(occs), p.size) {
		p.cond.Signal()
	}
}

// pop waits for the next occurrence; false once the pool is closed and empty.
func (p *pool) pop() (occurrence, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.queue) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.queue) == 0 {
		return occurrence{}, false
	}
	o := p.queue[0]
	p.queue[0] = occurrence{}
	p.queue = p.queue[1:]
	if len(p.queue) == 0 {
		p.queue = nil
	}
	return o, true
}

// close lets the workers finish the queue and exit.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
}
