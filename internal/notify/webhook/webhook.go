package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
)

// Type is the channel type in config.
const Type = "webhook"

// Headers set on every request.
const (
	SignatureHeader = "X-Steward-Signature" // "sha256=" + hex HMAC-SHA256(secret, body); absent without a secret
	DeliveryHeader  = "X-Steward-Delivery"  // the delivery id, the same on every retry
	EventHeader     = "X-Steward-Event"
)

// Payload is the JSON body of a webhook request.
type Payload struct {
	Event      string            `json:"event"`
	Severity   string            `json:"severity"`
	Service    string            `json:"service"`
	Title      string            `json:"title"`
	Text       string            `json:"text"`
	Fields     map[string]string `json:"fields"`
	Link       string            `json:"link"`
	DedupKey   string            `json:"dedup_key"`
	Resolve    bool              `json:"resolve"`
	ActionID   int64             `json:"action_id,omitempty"`
	DeliveryID int64             `json:"delivery_id"`
	SentAt     time.Time         `json:"sent_at"`
}

// Webhook posts messages to a URL.
type Webhook struct {
	name   string
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

var _ notify.Channel = (*Webhook)(nil)

// New builds a webhook channel from its config, resolving url and secret.
func New(cfg config.Channel, deps notify.Deps) (notify.Channel, error) {
	url, err := notify.ResolveSecret(cfg.URL, "url")
	if err != nil {
		return nil, err
	}
	if url == "" {
		return nil, errors.New("url is empty")
	}
	secret, err := notify.ResolveSecret(cfg.Secret, "secret")
	if err != nil {
		return nil, err
	}
	return &Webhook{name: cfg.Name, url: url, secret: []byte(secret), client: deps.Client(), now: time.Now}, nil
}

// Name is the channel name.
func (w *Webhook) Name() string { return w.name }

// Type is "webhook".
func (w *Webhook) Type() string { return Type }

// Send posts m; any status but 2xx is an error.
func (w *Webhook) Send(ctx context.Context, m notify.Message, deliveryID int64) error {
	fields := m.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	body, err := json.Marshal(Payload{
		Event: m.Event, Severity: m.Severity, Service: m.Service, Title: m.Summary(), Text: m.Text,
		Fields: fields, Link: m.Link, DedupKey: m.DedupKey, Resolve: m.Resolve, ActionID: m.ActionID,
		DeliveryID: deliveryID, SentAt: w.now().UTC().Truncate(time.Millisecond),
	})
	if err != nil {
		return fmt.Errorf("webhook %s: encode: %w", w.name, err)
	}
	h := http.Header{}
	h.Set(DeliveryHeader, strconv.FormatInt(deliveryID, 10))
	h.Set(EventHeader, m.Event)
	if len(w.secret) > 0 {
		h.Set(SignatureHeader, Sign(w.secret, body))
	}
	if _, err := notify.PostJSON(ctx, w.client, w.url, body, h); err != nil {
		return fmt.Errorf("webhook %s: %w", w.name, err)
	}
	return nil
}

// Sign returns the X-Steward-Signature value of body: "sha256=" followed by
// the hex HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is returned by Verify for a missing or wrong signature.
var ErrBadSignature = errors.New("webhook signature does not match")

// Verify checks a received body against its X-Steward-Signature value in
// constant time. Receivers written in Go can use it as is.
func Verify(secret, body []byte, signature string) error {
	got, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	want := Sign(secret, body)[len("sha256="):]
	if !hmac.Equal([]byte(got), []byte(want)) {
		return ErrBadSignature
	}
	return nil
}
