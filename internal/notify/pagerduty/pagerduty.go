package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
)

// Type is the channel type in config.
const Type = "pagerduty"

// DefaultURL is the Events API v2 endpoint.
const DefaultURL = "https://events.pagerduty.com/v2/enqueue"

// Event is an Events API v2 request body.
type Event struct {
	RoutingKey  string   `json:"routing_key"`
	EventAction string   `json:"event_action"` // trigger or resolve
	DedupKey    string   `json:"dedup_key,omitempty"`
	Payload     *Payload `json:"payload,omitempty"` // required for trigger
	Client      string   `json:"client,omitempty"`
	Links       []Link   `json:"links,omitempty"`
}

// Payload describes a triggered event.
type Payload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"` // critical, error, warning or info
	Timestamp     string            `json:"timestamp,omitempty"`
	Component     string            `json:"component,omitempty"`
	Class         string            `json:"class,omitempty"`
	CustomDetails map[string]string `json:"custom_details,omitempty"`
}

// Link is a link shown on the incident.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// PagerDuty sends events to the Events API v2.
type PagerDuty struct {
	name       string
	url        string
	routingKey string
	client     *http.Client
	now        func() time.Time
}

var _ notify.Channel = (*PagerDuty)(nil)

// New builds a PagerDuty channel, resolving the routing key and the
// optional URL (DefaultURL when unset).
func New(cfg config.Channel, deps notify.Deps) (notify.Channel, error) {
	key, err := notify.ResolveSecret(cfg.RoutingKey, "routing_key")
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, errors.New("routing_key is empty")
	}
	url, err := notify.ResolveSecret(cfg.URL, "url")
	if err != nil {
		return nil, err
	}
	if url == "" {
		url = DefaultURL
	}
	return &PagerDuty{name: cfg.Name, url: url, routingKey: key, client: deps.Client(), now: time.Now}, nil
}

// Name is the channel name.
func (p *PagerDuty) Name() string { return p.name }

// Type is "pagerduty".
func (p *PagerDuty) Type() string { return Type }

// Send posts a trigger (or, for m.Resolve, a resolve) event; PagerDuty
// answers 202 Accepted.
func (p *PagerDuty) Send(ctx context.Context, m notify.Message, _ int64) error {
	body, err := json.Marshal(p.event(m))
	if err != nil {
		return fmt.Errorf("pagerduty %s: encode: %w", p.name, err)
	}
	if _, err := notify.PostJSON(ctx, p.client, p.url, body, nil, http.StatusAccepted); err != nil {
		return fmt.Errorf("pagerduty %s: %w", p.name, err)
	}
	return nil
}

func (p *PagerDuty) event(m notify.Message) Event {
	ev := Event{RoutingKey: p.routingKey, EventAction: "trigger", DedupKey: truncate(m.DedupKey, 255), Client: "Steward"}
	if m.Resolve {
		ev.EventAction = "resolve"
		return ev
	}
	details := map[string]string{"event": m.Event}
	for k, v := range m.Fields {
		details[k] = v
	}
	if m.Text != "" {
		details["text"] = m.Text
	}
	ev.Payload = &Payload{
		Summary:       truncate(m.Summary(), 1024),
		Source:        "steward",
		Severity:      severity(m.Severity),
		Timestamp:     p.now().UTC().Format(time.RFC3339),
		Component:     m.Service,
		Class:         m.Event,
		CustomDetails: details,
	}
	if m.Link != "" {
		ev.Links = []Link{{Href: m.Link, Text: "Open in Steward"}}
	}
	return ev
}

// severity maps Steward's severities to PagerDuty's (which also has error).
func severity(s string) string {
	switch s {
	case notify.SeverityCritical:
		return "critical"
	case notify.SeverityWarning:
		return "warning"
	default:
		return "info"
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
