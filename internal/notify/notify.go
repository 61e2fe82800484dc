package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Events Steward sends. Routes match them by name or by prefix (action.*).
const (
	EventActionPending   = "action.pending"
	EventActionApproved  = "action.approved"
	EventActionRejected  = "action.rejected"
	EventActionSucceeded = "action.succeeded"
	EventActionFailed    = "action.failed"
	EventBreakGlassUsed  = "break_glass.used"
	EventReviewOpened    = "review.opened"
	EventReviewOverdue   = "review.overdue"
	EventReviewCompleted = "review.completed"
	EventTest            = "notify.test"
)

// Severities, lowest first.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// ErrInvalidMessage is wrapped by errors about a message that cannot be
// enqueued (no event, unknown severity, a resolve without a dedup key).
var ErrInvalidMessage = errors.New("invalid notification")

// Message is one notification. Channels render it in their own format.
type Message struct {
	// Event names what happened, e.g. action.pending or break_glass.used.
	Event string `json:"event"`
	// Severity is info, warning or critical.
	Severity string `json:"severity"`
	// Service is the service the event concerns, if any.
	Service string `json:"service,omitempty"`
	// Title is a one-line summary; Text the body (plain text).
	Title string `json:"title"`
	Text  string `json:"text,omitempty"`
	// Fields are short facts shown as a table (requester, risk, …).
	Fields map[string]string `json:"fields,omitempty"`
	// Link points at the thing in Steward's web UI.
	Link string `json:"link,omitempty"`
	// DedupKey identifies the incident or thing: while a message with the
	// same key is pending or delivered on a channel, repeats are not sent
	// again. Empty means every message is new.
	DedupKey string `json:"dedup_key,omitempty"`
	// Resolve marks the recovery message that closes DedupKey: a PagerDuty
	// resolve, a "resolved" message on the other channels.
	Resolve bool `json:"resolve,omitempty"`
	// ActionID and Buttons: Slack adds Approve/Reject buttons for the action.
	ActionID int64 `json:"action_id,omitempty"`
	Buttons  bool  `json:"buttons,omitempty"`
	// All ignores routes and sends to every channel (break-glass).
	All bool `json:"all,omitempty"`
}

// Validate checks the fields every channel relies on.
func (m Message) Validate() error {
	if strings.TrimSpace(m.Event) == "" {
		return fmt.Errorf("%w: event is empty", ErrInvalidMessage)
	}
	switch m.Severity {
	case SeverityInfo, SeverityWarning, SeverityCritical:
	default:
		return fmt.Errorf("%w: severity %q: want info, warning or critical", ErrInvalidMessage, m.Severity)
	}
	if m.Resolve && m.DedupKey == "" {
		return fmt.Errorf("%w: a resolve message needs the dedup key of what it resolves", ErrInvalidMessage)
	}
	return nil
}

// Summary is the title, or the event name when there is no title.
func (m Message) Summary() string {
	if s := strings.TrimSpace(m.Title); s != "" {
		return s
	}
	return m.Event
}

// Channel is an alert destination. Send delivers one message; deliveryID is
// the outbox row id, stable across retries, so a receiver can drop repeats.
// A Send error must name the channel, and Send must return when ctx ends.
type Channel interface {
	Name() string
	Type() string
	Send(ctx context.Context, m Message, deliveryID int64) error
}
