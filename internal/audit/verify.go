package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/stewardhq/steward/internal/store"
)

// Source streams events in seq order.
type Source interface {
	Scan(ctx context.Context, fromSeq int64, fn func(Event) error) error
}

// StoreSource reads the events of a live store.
func StoreSource(s *store.Store) Source { return storeSource{s} }

type storeSource struct{ s *store.Store }

func (s storeSource) Scan(ctx context.Context, fromSeq int64, fn func(Event) error) error {
	return s.s.ScanAudit(ctx, fromSeq, func(r store.AuditRecord) error { return fn(eventFromRecord(r)) })
}

// Report is the outcome of Verify. When OK is false, FirstBad is the first
// sequence number that cannot be trusted and Problem says why.
type Report struct {
	Events      int64  `json:"events"`
	HeadSeq     int64  `json:"head_seq"`
	HeadHash    string `json:"head_hash"`
	Checkpoints int    `json:"checkpoints"`
	OK          bool   `json:"ok"`
	FirstBad    int64  `json:"first_bad,omitempty"`
	Problem     string `json:"problem,omitempty"`
}

// checked is what a worker learns about one event on its own; the chain is
// then checked in order.
type checked struct {
	seq        int64
	line       int64 // line of a JSONL export, 0 for other sources
	prev, hash [32]byte
	prevOK     bool // prev_hash is 64 lowercase hex digits
	hashOK     bool // hash is 64 lowercase hex digits
	match      bool // hash is the SHA-256 of the canonical encoding
	why        string
	problem    string // the event could not be read at all
}

// Verify reads every event of src and checks that seq starts at 1 and has no
// gaps, that each event's hash is the SHA-256 of its canonical encoding, that
// each prev_hash is the previous event's hash (ZeroHash for the first), and
// that the log agrees with every checkpoint: it reaches the checkpoint's size
// and its event at that seq has the checkpoint's hash. Verify trusts the Size
// and Hash of the checkpoints; obtain them with ParseCheckpoint, which checks
// the signature.
//
// Tampering is reported in the Report (OK false, FirstBad, Problem); the
// error is only for failures to read src. Hashing runs on every core.
func Verify(ctx context.Context, src Source, checkpoints []Checkpoint) (Report, error) {
	v := newChain(checkpoints)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan job, workers)
	order := make(chan chan []checked, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p lineParser
			for j := range jobs {
				j.out <- j.run(&p)
			}
		}()
	}
	var srcErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		defer close(order)
		send := func(j job) error {
			select {
			case order <- j.out:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case jobs <- j:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if js, ok := src.(*jsonlSource); ok {
			srcErr = js.chunks(ctx, send)
		} else {
			srcErr = produceEvents(ctx, src, send)
		}
	}()
	for out := range order {
		var res []checked
		select {
		case res = <-out:
		case <-ctx.Done():
		}
		for i := range res {
			v.add(&res[i])
		}
	}
	wg.Wait()
	if srcErr != nil {
		return Report{}, fmt.Errorf("verify audit log: %w", srcErr)
	}
	if err := ctx.Err(); err != nil {
		return Report{}, fmt.Errorf("verify audit log: %w", err)
	}
	return v.finish(), nil
}

// job is a batch of work for one worker: either events or a chunk of JSONL
// lines.
type job struct {
	events    []Event
	chunk     []byte
	firstLine int64
	tooLong   bool // the line starting the chunk exceeds maxLine
	out       chan []checked
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

const (
	chunkSize  = 1 << 20
	eventBatch = 1024
)

func (j job) run(p *lineParser) []checked {
	if j.tooLong {
		return []checked{{line: j.firstLine, problem: errLineTooLong.Error()}}
	}
	if j.events != nil {
		res := make([]checked, len(j.events))
		for i := range j.events {
			checkEvent(p, &j.events[i], &res[i])
		}
		return res
	}
	res := make([]checked, 0, bytes.Count(j.chunk, []byte{'\n'})+1)
	line := j.firstLine
	rest := j.chunk
	for len(rest) > 0 {
		var l []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			l, rest = rest, nil
		}
		if len(bytes.TrimSpace(l)) > 0 {
			res = append(res, checked{line: line})
			p.check(bytes.TrimSuffix(l, []byte{'\r'}), &res[len(res)-1])
		}
		line++
	}
	buf := j.chunk[:0]
	chunkPool.Put(&buf)
	return res
}

// checkEvent checks one event of a non-JSONL source.
func checkEvent(p *lineParser, e *Event, out *checked) {
	out.seq = e.Seq
	var err error
	p.buf, err = appendCanonicalEvent(p.buf[:0], e)
	out.prev, out.prevOK = decodeHashString(e.PrevHash)
	out.hash, out.hashOK = decodeHashString(e.Hash)
	switch {
	case err != nil:
		out.why = "details are not valid JSON (edited?)"
	case !out.hashOK:
		out.why = "hash is not 64 lowercase hex digits (edited?)"
	default:
		out.match = sha256.Sum256(p.buf) == out.hash
	}
}

func produceEvents(ctx context.Context, src Source, send func(job) error) error {
	batch := make([]Event, 0, eventBatch)
	err := src.Scan(ctx, 1, func(e Event) error {
		batch = append(batch, e)
		if len(batch) == eventBatch {
			if err := send(job{events: batch, out: make(chan []checked, 1)}); err != nil {
				return err
			}
			batch = make([]Event, 0, eventBatch)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(batch) > 0 {
		return send(job{events: batch, out: make(chan []checked, 1)})
	}
	return nil
}

// chunks cuts the export into chunks of whole lines for the workers.
func (j *jsonlSource) chunks(ctx context.Context, send func(job) error) error {
	var carry []byte
	line := int64(1)
	eof := false
	for !eof {
		bp := chunkPool.Get().(*[]byte)
		buf := append((*bp)[:0], carry...)
		// Fill the buffer; grow it only while one line does not fit.
		for {
			if len(buf) == cap(buf) {
				if bytes.IndexByte(buf, '\n') >= 0 {
					break
				}
				if len(buf) > maxLine {
					return send(job{tooLong: true, firstLine: line, out: make(chan []checked, 1)})
				}
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := j.r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if errors.Is(err, io.EOF) {
				eof = true
				break
			}
			if err != nil {
				return err
			}
		}
		cut := len(buf)
		if !eof {
			cut = bytes.LastIndexByte(buf, '\n') + 1
		}
		carry = append(carry[:0], buf[cut:]...)
		chunk := buf[:cut]
		if len(chunk) == 0 {
			continue
		}
		if err := send(job{chunk: chunk, firstLine: line, out: make(chan []checked, 1)}); err != nil {
			return err
		}
		line += int64(bytes.Count(chunk, []byte{'\n'}))
	}
	return nil
}

// chain checks events in order.
type chain struct {
	rep      Report
	expect   int64
	prev     [32]byte
	prevOK   bool
	head     [32]byte
	headOK   bool
	cps      map[int64][][32]byte
	cpSizes  []int64
	lastGood int64 // size of the newest checkpoint that matched
	problem  bool
}

func newChain(cps []Checkpoint) *chain {
	v := &chain{expect: 1, prevOK: true, cps: map[int64][][32]byte{}}
	v.rep.Checkpoints = len(cps)
	for _, c := range cps {
		h, _ := decodeHashString(c.Hash)
		if _, ok := v.cps[c.Size]; !ok {
			v.cpSizes = append(v.cpSizes, c.Size)
		}
		v.cps[c.Size] = append(v.cps[c.Size], h)
	}
	return v
}

// fail records a problem; the one with the smallest sequence number wins,
// the first found among equals.
func (v *chain) fail(seq int64, format string, args ...any) {
	if v.problem && seq >= v.rep.FirstBad {
		return
	}
	v.problem = true
	v.rep.FirstBad = seq
	v.rep.Problem = fmt.Sprintf(format, args...)
}

func (v *chain) add(c *checked) {
	if c.problem != "" {
		v.fail(v.expect, "line %d: %s", c.line, c.problem)
		return
	}
	v.rep.Events++
	switch {
	case c.seq > v.expect:
		if v.expect == 1 {
			v.fail(1, "event 1 missing: log starts at seq %d (deleted?)", c.seq)
		} else {
			v.fail(v.expect, "event %d missing: seq jumps from %d to %d (deleted?)", v.expect, v.expect-1, c.seq)
		}
	case c.seq < v.expect:
		v.fail(c.seq, "event %d: out of order after event %d (duplicated or reordered?)", c.seq, v.expect-1)
	case !c.prevOK || !v.prevOK || c.prev != v.prev:
		if c.seq == 1 {
			v.fail(1, "event 1: prev_hash is not the zero hash (inserted or reordered?)")
		} else {
			v.fail(c.seq, "event %d: prev_hash does not match event %d (inserted or reordered?)", c.seq, c.seq-1)
		}
	case !c.match:
		why := c.why
		if why == "" {
			why = "hash mismatch (edited?)"
		}
		v.fail(c.seq, "event %d: %s", c.seq, why)
	}
	v.prev, v.prevOK = c.hash, c.hashOK
	v.head, v.headOK = c.hash, c.hashOK
	if c.seq >= v.expect {
		v.expect = c.seq + 1
		v.rep.HeadSeq = c.seq
	}
	if hs, ok := v.cps[c.seq]; ok {
		for _, h := range hs {
			if !c.hashOK || h != c.hash {
				if v.problem {
					continue // already explained by an earlier, more precise problem
				}
				v.fail(v.lastGood+1, "checkpoint size %d: head hash differs (rewritten history somewhere in events %d..%d)", c.seq, v.lastGood+1, c.seq)
			} else {
				v.lastGood = c.seq
			}
		}
	}
}

func (v *chain) finish() Report {
	end := v.expect - 1
	for _, size := range v.cpSizes {
		if size > end {
			v.fail(end+1, "checkpoint at size %d but log ends at %d (truncated tail)", size, end)
		}
	}
	if v.headOK {
		v.rep.HeadHash = hex.EncodeToString(v.head[:])
	}
	v.rep.OK = !v.problem
	return v.rep
}
