// Package email implements the email channel: plain-text messages sent over
// SMTP with STARTTLS (required when configured), implicit TLS, or, for
// loopback testing, no TLS; AUTH PLAIN when a username is set.
package email
