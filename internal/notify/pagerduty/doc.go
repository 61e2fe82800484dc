// Package pagerduty implements the PagerDuty channel: messages become
// Events API v2 trigger events, and resolve messages resolve events, with
// the message's dedup key, so PagerDuty opens and closes one incident per
// key.
package pagerduty
