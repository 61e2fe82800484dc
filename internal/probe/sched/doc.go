// Package sched runs probe jobs on their intervals: deterministic hashed
// offsets, one bounded worker pool per class (cheap, browser), no drift, and
// an explicit "missed" record for every run that could not start on time.
// Results go to a Sink in batches. It knows nothing about probe types: a Job
// is a key, an interval, a timeout, a class and a Run function.
package sched
