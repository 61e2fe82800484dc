// Package webhook implements the generic webhook channel: each message is
// POSTed as a documented JSON body (docs/notify.md), signed with
// HMAC-SHA256 in X-Steward-Signature and identified by X-Steward-Delivery so
// receivers can verify it and drop repeats.
package webhook
