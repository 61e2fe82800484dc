package backup

import (
	"io"
	"sync"
	"time"
)

// Progress reports how far a phase of a backup or fetch is.
type Progress struct {
	Phase string        `json:"phase"` // dump, upload, fetch, decrypt
	Bytes int64         `json:"bytes"`
	Total int64         `json:"total,omitempty"` // 0 when unknown
	Rate  float64       `json:"rate"`            // bytes per second since the phase began
	ETA   time.Duration `json:"eta,omitempty"`   // 0 when unknown
	Done  bool          `json:"done,omitempty"`  // the phase's last report
}

// progressInterval is the least time between two reports of a phase.
const progressInterval = 100 * time.Millisecond

// tracker turns byte counts into throttled Progress reports. It is safe
// for concurrent use (engines may report from their own goroutines).
type tracker struct {
	fn    func(Progress)
	phase string
	total int64

	mu    sync.Mutex
	start time.Time
	last  time.Time
	bytes int64
}

func newTracker(fn func(Progress), phase string, total int64) *tracker {
	now := time.Now()
	return &tracker{fn: fn, phase: phase, total: total, start: now}
}

// add counts n more bytes.
func (t *tracker) add(n int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytes += n
	t.report(false)
}

// set records the bytes done so far.
func (t *tracker) set(n int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytes = n
	t.report(false)
}

// done sends the phase's final report.
func (t *tracker) done() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report(true)
}

func (t *tracker) report(final bool) {
	if t.fn == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(t.last) < progressInterval {
		return
	}
	t.last = now
	p := Progress{Phase: t.phase, Bytes: t.bytes, Total: t.total, Done: final}
	if el := now.Sub(t.start).Seconds(); el > 0 {
		p.Rate = float64(t.bytes) / el
	}
	if t.total > t.bytes && p.Rate > 0 && !final {
		p.ETA = time.Duration(float64(t.total-t.bytes) / p.Rate * float64(time.Second))
	}
	t.fn(p)
}

// countingReader reports what is read through it to a tracker.
type countingReader struct {
	r io.Reader
	t *tracker
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.t.add(int64(n))
	return n, err
}
