package sched

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Sink receives results in batches. A batch that fails is passed again,
// unchanged, until WriteBatch succeeds, so WriteBatch must either write the
// whole batch or nothing (or be idempotent). It is called from one goroutine
// at a time and must return soon after ctx is done.
type Sink interface {
	WriteBatch(ctx context.Context, recs []Record) error
}

// batcher collects records and writes them to the sink: every size records,
// or every interval when fewer are waiting, whichever comes first.
type batcher struct {
	sink     Sink
	size     int
	interval time.Duration
	retry    time.Duration // first retry delay; doubled up to maxRetryDelay
	log      *slog.Logger
	m        *metrics

	mu      sync.Mutex
	pending []Record

	full chan struct{} // capacity 1: pending reached size
	done chan struct{} // closed when no more records will be added
	exit chan struct{} // closed by loop on return
	err  error         // set by loop before exit: records left undelivered
}

const maxRetryDelay = 10 * time.Second

func (b *batcher) add(r Record) {
	b.mu.Lock()
	b.pending = append(b.pending, r)
	n := len(b.pending)
	b.mu.Unlock()
	b.m.pending.Inc()
	if n >= b.size {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

// take removes up to size records; with whole false, only a full batch.
func (b *batcher) take(whole bool) []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(b.pending), b.size)
	if n == 0 || (!whole && n < b.size) {
		return nil
	}
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	return batch
}

// loop owns all calls to the sink. ctx is cancelled only when Stop gives up.
func (b *batcher) loop(ctx context.Context) {
	defer close(b.exit)
	t := time.NewTimer(b.interval)
	defer t.Stop()
	for {
		final := false
		timed := false
		select {
		case <-b.full:
		case <-t.C:
			timed = true
		case <-b.done:
			final = true
		}
		// After a timer tick or at the end everything goes out; otherwise
		// only full batches, and the timer keeps running for the rest.
		for {
			batch := b.take(timed || final)
			if batch == nil {
				break
			}
			if err := b.write(ctx, batch); err != nil {
				b.mu.Lock()
				lost := len(batch) + len(b.pending)
				b.mu.Unlock()
				b.err = fmt.Errorf("sched: %d results not delivered: %w", lost, err)
				return
			}
			if !timed && !final {
				t.Reset(b.interval)
			}
		}
		if final {
			return
		}
		if timed {
			t.Reset(b.interval)
		}
	}
}

// write retries the batch until the sink takes it or ctx is done.
func (b *batcher) write(ctx context.Context, batch []Record) error {
	delay := b.retry
	for {
		err := b.sink.WriteBatch(ctx, batch)
		if err == nil {
			b.m.pending.Sub(float64(len(batch)))
			return nil
		}
		b.m.sinkFailures.Inc()
		b.log.Warn("probe results: write batch failed, retrying", "records", len(batch), "retry_in", delay, "err", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("%w (last sink error: %w)", ctx.Err(), err)
		}
		delay = min(2*delay, maxRetryDelay)
	}
}
