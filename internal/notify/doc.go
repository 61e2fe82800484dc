// Package notify owns Steward's alert delivery: the Message every feature
// sends, the Channel interface each destination implements (webhook, Slack,
// email over SMTP, PagerDuty Events API v2 live in subpackages, and
// internal/notify/all registers them), routing of messages to channels by
// event, severity and service, and the Outbox: a table in the store from
// which messages are delivered with retries and backoff, so that an alert is
// never lost while a channel is down or Steward restarts.
package notify
