// Package scratchdir owns the labelled directories that hold throwaway
// database servers and files: it creates them with a label file, finds them
// again after a crash, stops the server process still running in one, and
// picks free loopback ports.
package scratchdir
