package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
)

// Type is the channel type in config.
const Type = "slack"

// Button action ids: a click on one comes back in ParseInteraction.
const (
	ApproveActionID = "steward_approve"
	RejectActionID  = "steward_reject"
)

// Slack posts messages to an incoming webhook.
type Slack struct {
	name   string
	url    string
	client *http.Client
}

var _ notify.Channel = (*Slack)(nil)

// New builds a Slack channel from its config, resolving the webhook URL.
func New(cfg config.Channel, deps notify.Deps) (notify.Channel, error) {
	url, err := notify.ResolveSecret(cfg.URL, "url")
	if err != nil {
		return nil, err
	}
	if url == "" {
		return nil, errors.New("url is empty: set the incoming webhook URL")
	}
	return &Slack{name: cfg.Name, url: url, client: deps.Client()}, nil
}

// Name is the channel name.
func (s *Slack) Name() string { return s.name }

// Type is "slack".
func (s *Slack) Type() string { return Type }

// Send posts m as a Block Kit message; Slack answers 200 "ok".
func (s *Slack) Send(ctx context.Context, m notify.Message, _ int64) error {
	body, err := json.Marshal(Render(m))
	if err != nil {
		return fmt.Errorf("slack %s: encode: %w", s.name, err)
	}
	if _, err := notify.PostJSON(ctx, s.client, s.url, body, nil); err != nil {
		return fmt.Errorf("slack %s: %w", s.name, err)
	}
	return nil
}

// Message is an incoming-webhook message.
type Message struct {
	Text   string  `json:"text"` // fallback for notifications
	Blocks []Block `json:"blocks"`
}

// Block is a Block Kit layout block (the subset Steward uses).
type Block struct {
	Type     string    `json:"type"`
	BlockID  string    `json:"block_id,omitempty"`
	Text     *Text     `json:"text,omitempty"`
	Fields   []Text    `json:"fields,omitempty"`
	Elements []Element `json:"elements,omitempty"`
}

// Text is a text object.
type Text struct {
	Type  string `json:"type"` // plain_text or mrkdwn
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// Element is a context element or a button.
type Element struct {
	Type     string `json:"type"`
	Text     any    `json:"text,omitempty"` // *Text for buttons, string for mrkdwn context elements
	ActionID string `json:"action_id,omitempty"`
	Value    string `json:"value,omitempty"`
	Style    string `json:"style,omitempty"`
	URL      string `json:"url,omitempty"`
}

var severityEmoji = map[string]string{
	notify.SeverityInfo:     ":information_source:",
	notify.SeverityWarning:  ":warning:",
	notify.SeverityCritical: ":rotating_light:",
}

// Render turns m into a Block Kit message: a header, the text, up to ten
// fields, a context line (severity, service, event), and, for m.Buttons,
// Approve/Reject buttons whose value is the action id.
func Render(m notify.Message) Message {
	title := m.Summary()
	if m.Resolve {
		title = "Resolved: " + title
	}
	out := Message{Text: title}
	out.Blocks = append(out.Blocks, Block{Type: "header", Text: &Text{Type: "plain_text", Text: truncate(title, 150), Emoji: true}})
	if t := strings.TrimSpace(m.Text); t != "" {
		out.Blocks = append(out.Blocks, Block{Type: "section", Text: &Text{Type: "mrkdwn", Text: truncate(escape(t), 3000)}})
	}
	if len(m.Fields) > 0 {
		keys := make([]string, 0, len(m.Fields))
		for k := range m.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var fields []Text
		for _, k := range keys {
			if len(fields) == 10 {
				break // Slack's limit per section
			}
			fields = append(fields, Text{Type: "mrkdwn", Text: truncate("*"+escape(k)+"*\n"+escape(m.Fields[k]), 2000)})
		}
		out.Blocks = append(out.Blocks, Block{Type: "section", Fields: fields})
	}
	ctxLine := severityEmoji[m.Severity] + " " + m.Severity
	if m.Resolve {
		ctxLine = ":white_check_mark: resolved"
	}
	if m.Service != "" {
		ctxLine += " · service *" + escape(m.Service) + "*"
	}
	ctxLine += " · `" + escape(m.Event) + "`"
	if m.Link != "" {
		ctxLine += " · <" + m.Link + "|open in Steward>"
	}
	out.Blocks = append(out.Blocks, Block{Type: "context", Elements: []Element{{Type: "mrkdwn", Text: ctxLine}}})
	if m.Buttons && m.ActionID > 0 && !m.Resolve {
		id := strconv.FormatInt(m.ActionID, 10)
		out.Blocks = append(out.Blocks, Block{Type: "actions", BlockID: "steward_action_" + id, Elements: []Element{
			{Type: "button", Text: &Text{Type: "plain_text", Text: "Approve"}, ActionID: ApproveActionID, Value: id, Style: "primary"},
			{Type: "button", Text: &Text{Type: "plain_text", Text: "Reject"}, ActionID: RejectActionID, Value: id, Style: "danger"},
		}})
	}
	return out
}

// escape escapes the characters Slack's mrkdwn treats as control sequences.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
