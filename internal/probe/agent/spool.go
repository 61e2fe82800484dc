package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/stewardhq/steward/internal/server"
)

// Spool bounds.
const (
	DefaultSpoolMaxResults = 100_000
	DefaultSpoolMaxBytes   = 64 << 20
	// spoolSegments is about how many segment files a full spool has; the
	// oldest is dropped whole when the spool is over a bound.
	spoolSegments = 16
	cursorFile    = "cursor"
	segmentGlob   = "seg-*.jsonl"
)

// Spool is an append-only, bounded queue of results on disk: segment files
// of JSON lines, and a cursor file naming the first result not yet
// acknowledged by the server. Appends are synced before they return, so a
// result that was spooled survives a crash; a crash after an upload but
// before its acknowledgement is recorded uploads the batch again, which the
// server stores once (by uid).
type Spool struct {
	dir        string
	maxResults int
	maxBytes   int64
	log        *slog.Logger

	mu      sync.Mutex
	segs    []segment // oldest first; the last is the one appended to
	cur     cursor
	active  *os.File
	dropped int64
}

type segment struct {
	seq     uint64
	records int
	bytes   int64
}

// cursor is the position of the first unacknowledged result: a segment,
// the byte offset in it, and how many of its results are before it.
type cursor struct {
	seq  uint64
	off  int64
	done int
}

// Mark is a position in the spool returned by Peek, for Ack.
type Mark cursor

// OpenSpool opens or creates the spool in dir. A result half-written when
// the agent crashed is discarded.
func OpenSpool(dir string, maxResults int, maxBytes int64, log *slog.Logger) (*Spool, error) {
	if maxResults <= 0 {
		maxResults = DefaultSpoolMaxResults
	}
	if maxBytes <= 0 {
		maxBytes = DefaultSpoolMaxBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool directory %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxResults: maxResults, maxBytes: maxBytes, log: log}
	names, err := filepath.Glob(filepath.Join(dir, segmentGlob))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), "seg-"), ".jsonl"), 10, 64)
		if err != nil {
			continue
		}
		seg, err := scanSegment(name)
		if err != nil {
			return nil, fmt.Errorf("spool %s: %w", name, err)
		}
		seg.seq = seq
		s.segs = append(s.segs, seg)
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmpU64(a.seq, b.seq) })
	if err := s.readCursor(); err != nil {
		return nil, err
	}
	next := s.cur.seq + 1
	if len(s.segs) > 0 {
		next = s.segs[len(s.segs)-1].seq + 1
	} else {
		s.cur = cursor{seq: next}
	}
	if err := s.newSegment(next); err != nil {
		return nil, err
	}
	return s, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanSegment counts the complete lines of a segment and cuts off a
// partial last line.
func scanSegment(name string) (segment, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return segment{}, err
	}
	defer f.Close()
	var seg segment
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			seg.records++
			seg.bytes += int64(len(line))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return segment{}, err
		}
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > seg.bytes {
		if err := f.Truncate(seg.bytes); err != nil {
			return segment{}, err
		}
	}
	return seg, nil
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%016d.jsonl", seq))
}

func (s *Spool) readCursor() error {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorFile))
	if errors.Is(err, os.ErrNotExist) {
		if len(s.segs) > 0 {
			s.cur = cursor{seq: s.segs[0].seq}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	var c cursor
	if _, err := fmt.Sscanf(string(b), "%d %d %d", &c.seq, &c.off, &c.done); err != nil {
		return fmt.Errorf("spool cursor %s is damaged (%q): remove it to upload the whole spool again (the server stores each result once)", filepath.Join(s.dir, cursorFile), b)
	}
	s.cur = c
	// Segments before the cursor were acknowledged; one the cursor names
	// that no longer exists means everything before the next is done.
	for len(s.segs) > 0 && s.segs[0].seq < c.seq {
		os.Remove(s.segPath(s.segs[0].seq))
		s.segs = s.segs[1:]
	}
	if len(s.segs) > 0 && s.segs[0].seq != c.seq {
		s.cur = cursor{seq: s.segs[0].seq}
	}
	return nil
}

func (s *Spool) writeCursor() error {
	tmp := filepath.Join(s.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %d %d\n", s.cur.seq, s.cur.off, s.cur.done), 0o600); err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, cursorFile)); err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	return nil
}

func (s *Spool) newSegment(seq uint64) error {
	if s.active != nil {
		s.active.Close()
	}
	f, err := os.OpenFile(s.segPath(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool segment: %w", err)
	}
	s.active = f
	if len(s.segs) == 0 || s.segs[len(s.segs)-1].seq != seq {
		s.segs = append(s.segs, segment{seq: seq})
	}
	return nil
}

// Append writes results at the end of the spool and syncs them. When the
// spool is over a bound, its oldest segment is dropped, with a warning.
func (s *Spool) Append(results []server.AgentResult) error {
	if len(results) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for i := range results {
		b, err := json.Marshal(&results[i])
		if err != nil {
			return fmt.Errorf("spool: encode result of %s/%s: %w", results[i].Service, results[i].Probe, err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last := &s.segs[len(s.segs)-1]
	if last.records > 0 && (last.records+len(results) > s.segLimit() || last.bytes+int64(buf.Len()) > s.segByteLimit()) {
		if err := s.newSegment(last.seq + 1); err != nil {
			return err
		}
		last = &s.segs[len(s.segs)-1]
	}
	if _, err := s.active.Write(buf.Bytes()); err != nil {
		s.active.Truncate(last.bytes)
		return fmt.Errorf("spool: write: %w", err)
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: sync: %w", err)
	}
	last.records += len(results)
	last.bytes += int64(buf.Len())
	return s.enforce()
}

func (s *Spool) segLimit() int { return max(1, s.maxResults/spoolSegments) }
func (s *Spool) segByteLimit() int64 {
	return max(1, s.maxBytes/spoolSegments)
}

// enforce drops the oldest segments while the spool is over a bound.
func (s *Spool) enforce() error {
	for {
		n, b := s.pendingLocked()
		if n <= s.maxResults && b <= s.maxBytes {
			return nil
		}
		if len(s.segs) == 1 {
			// Only the active segment: start another so the old one can go.
			if err := s.newSegment(s.segs[0].seq + 1); err != nil {
				return err
			}
		}
		old := s.segs[0]
		lost := old.records
		if s.cur.seq == old.seq {
			lost -= s.cur.done
		}
		if err := os.Remove(s.segPath(old.seq)); err != nil {
			return fmt.Errorf("spool: drop oldest segment: %w", err)
		}
		s.segs = s.segs[1:]
		s.cur = cursor{seq: s.segs[0].seq}
		if err := s.writeCursor(); err != nil {
			return err
		}
		s.dropped += int64(lost)
		s.log.Warn("spool full: dropped the oldest results, which will never be uploaded", "dropped", lost, "dropped_total", s.dropped,
			"max_results", s.maxResults, "max_bytes", s.maxBytes)
	}
}

// pendingLocked counts the results and bytes not yet acknowledged.
func (s *Spool) pendingLocked() (int, int64) {
	n, b := 0, int64(0)
	for _, seg := range s.segs {
		if seg.seq < s.cur.seq {
			continue
		}
		n += seg.records
		b += seg.bytes
		if seg.seq == s.cur.seq {
			n -= s.cur.done
			b -= s.cur.off
		}
	}
	return n, b
}

// Pending is how many results wait to be uploaded.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := s.pendingLocked()
	return n
}

// Dropped is how many results were dropped because the spool was full, or
// because they could not be read back.
func (s *Spool) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// AddDropped counts results dropped elsewhere (refused by the server).
func (s *Spool) AddDropped(n int) {
	s.mu.Lock()
	s.dropped += int64(n)
	s.mu.Unlock()
}

// Peek returns up to maxResults of the oldest unacknowledged results, at
// most maxBytes of them (at least one), and the mark to Ack once the
// server has them. A line that cannot be decoded is skipped and counted as
// dropped.
func (s *Spool) Peek(maxResults int, maxBytes int64) ([]server.AgentResult, Mark, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.AgentResult
	c := s.cur
	var size int64
	for _, seg := range s.segs {
		if seg.seq < c.seq {
			continue
		}
		if seg.seq > c.seq {
			c = cursor{seq: seg.seq}
		}
		if c.off >= seg.bytes {
			continue
		}
		f, err := os.Open(s.segPath(seg.seq))
		if err != nil {
			return nil, Mark(s.cur), fmt.Errorf("spool: read: %w", err)
		}
		if _, err := f.Seek(c.off, io.SeekStart); err != nil {
			f.Close()
			return nil, Mark(s.cur), fmt.Errorf("spool: read: %w", err)
		}
		r := bufio.NewReaderSize(io.LimitReader(f, seg.bytes-c.off), 64<<10)
		for len(out) < maxResults {
			line, err := r.ReadBytes('\n')
			if len(line) == 0 || line[len(line)-1] != '\n' {
				break
			}
			if len(out) > 0 && size+int64(len(line)) > maxBytes {
				break
			}
			var res server.AgentResult
			if jerr := json.Unmarshal(line, &res); jerr != nil {
				s.dropped++
				s.log.Warn("spool: skipped a damaged result", "segment", seg.seq, "offset", c.off, "err", jerr)
			} else {
				out = append(out, res)
				size += int64(len(line))
			}
			c.off += int64(len(line))
			c.done++
			if err != nil {
				break
			}
		}
		f.Close()
		if len(out) >= maxResults || (len(out) > 0 && size >= maxBytes) || c.off < seg.bytes {
			break
		}
	}
	return out, Mark(c), nil
}

// Ack records that everything before m is uploaded, and removes the
// segments that are wholly uploaded.
func (s *Spool) Ack(m Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := cursor(m)
	if c.seq < s.cur.seq || (c.seq == s.cur.seq && c.off < s.cur.off) {
		return nil // the segment was dropped meanwhile
	}
	s.cur = c
	for len(s.segs) > 1 && (s.segs[0].seq < s.cur.seq || (s.segs[0].seq == s.cur.seq && s.cur.off >= s.segs[0].bytes)) {
		if err := os.Remove(s.segPath(s.segs[0].seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: remove uploaded segment: %w", err)
		}
		s.segs = s.segs[1:]
		if s.cur.seq < s.segs[0].seq {
			s.cur = cursor{seq: s.segs[0].seq}
		}
	}
	return s.writeCursor()
}

// Close closes the active segment.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return nil
	}
	err := s.active.Close()
	s.active = nil
	return err
}
