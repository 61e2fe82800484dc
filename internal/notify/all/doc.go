// Package all registers Steward's built-in notification channel types
// (webhook, slack, email, pagerduty) in one explicit place.
package all
