package sched

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Classes of jobs; each has its own bounded pool of workers.
const (
	ClassCheap   = "cheap"
	ClassBrowser = "browser"
)

// Statuses of a Record. StatusUp, StatusDown and StatusError come from the
// job's Outcome; StatusMissed is set by the scheduler.
const (
	StatusUp     = "up"
	StatusDown   = "down"
	StatusError  = "error"
	StatusMissed = "missed"
)

// Job is one periodic run, as the scheduler sees it.
type Job struct {
	// Key identifies the job across updates, e.g. "service/probe".
	Key string
	// Interval between scheduled starts; > 0.
	Interval time.Duration
	// Timeout bounds one run (its context's deadline); 0 < Timeout <= Interval.
	Timeout time.Duration
	// Class selects the pool: ClassCheap or ClassBrowser.
	Class string
	// Hash identifies the job's definition; Update treats a job whose Hash
	// changed as changed.
	Hash string
	// Run performs one run. It must return soon after ctx is done.
	Run func(ctx context.Context) Outcome
}

// Outcome is what a Run reports.
type Outcome struct {
	Status   string // StatusUp, StatusDown or StatusError
	Duration time.Duration
	Error    string
}

// Record is one scheduled occurrence of a job: either a run or a miss.
type Record struct {
	Key       string
	Class     string
	Scheduled time.Time // when the run was due
	Started   time.Time // zero when Status is StatusMissed
	// Lag is Started-Scheduled for a run; for a miss, how late the
	// occurrence was when it was given up.
	Lag      time.Duration
	Status   string
	Duration time.Duration
	Error    string
}

// Offset is the job's phase within its interval: FNV-1a of the key modulo
// the interval. A job runs at the instants t with
// (t.UnixNano() - Offset) mod Interval == 0, so its schedule is the same
// across restarts and reloads, and many jobs spread evenly.
func Offset(key string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(key))
	return time.Duration(h.Sum64() % uint64(interval))
}

// firstRun is the first instant at or after now on the job's grid.
func firstRun(now time.Time, key string, interval time.Duration) time.Time {
	iv := int64(interval)
	r := (now.UnixNano() - int64(Offset(key, interval))) % iv
	if r < 0 {
		r += iv
	}
	if r == 0 {
		return now
	}
	return now.Add(time.Duration(iv - r))
}

func (j *Job) validate(pools map[string]int) error {
	var errs []error
	if j.Key == "" {
		errs = append(errs, errors.New("empty key"))
	}
	if j.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %s: must be positive", j.Interval))
	}
	if j.Timeout <= 0 || j.Timeout > j.Interval {
		errs = append(errs, fmt.Errorf("timeout %s: must be positive and at most the interval %s", j.Timeout, j.Interval))
	}
	if _, ok := pools[j.Class]; !ok {
		errs = append(errs, fmt.Errorf("class %q: no such pool", j.Class))
	}
	if j.Run == nil {
		errs = append(errs, errors.New("no Run function"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("job %q: %w", j.Key, errors.Join(errs...))
}

// sameSchedule reports whether b can keep a's entry unchanged.
func sameSchedule(a, b *Job) bool {
	return a.Interval == b.Interval && a.Timeout == b.Timeout && a.Class == b.Class && a.Hash == b.Hash
}
