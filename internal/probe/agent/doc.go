// Package agent runs probes from a location other than the server: it pulls
// the probes assigned to its location from the server, runs them with the
// probe scheduler, spools every result on disk and uploads the spool in
// batches, oldest first, each result exactly once (by its uid). A
// self-check tells a location that cannot probe (its network is down) from
// a target that is down: such results are recorded as broken.
package agent
