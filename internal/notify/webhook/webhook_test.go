package webhook_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/notifytest"
	"github.com/stewardhq/steward/internal/notify/webhook"
)

const secret = "s3cret-key"

func decode(t *testing.T, r *http.Request, body []byte) notifytest.Received {
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("webhook body is not JSON: %v", err)
	}
	if err := webhook.Verify([]byte(secret), body, r.Header.Get(webhook.SignatureHeader)); err != nil {
		t.Errorf("signature: %v", err)
	}
	if h := r.Header.Get(webhook.DeliveryHeader); h != strconv.FormatInt(p.DeliveryID, 10) {
		t.Errorf("%s = %q, body delivery_id = %d", webhook.DeliveryHeader, h, p.DeliveryID)
	}
	return notifytest.Received{Title: p.Title, Event: p.Event, DedupKey: p.DedupKey, Resolve: p.Resolve, DeliveryID: p.DeliveryID}
}

func newChannel(t *testing.T, name, url string) notify.Channel {
	t.Helper()
	ch, err := webhook.New(config.Channel{Name: name, Type: webhook.Type, URL: config.Secret(url), Secret: secret}, notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestConformance(t *testing.T) {
	t.Parallel()
	notifytest.Run(t, webhook.Type, notifytest.Harness{
		Start: func(t *testing.T, name string, b notifytest.Behavior) (notify.Channel, func() []notifytest.Received) {
			rc := notifytest.NewHTTPReceiver(t, b, 0, decode)
			return newChannel(t, name, rc.URL), rc.Received
		},
	})
}

func TestBodySchemaAndSignature(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewHTTPReceiver(t, notifytest.Accept, http.StatusNoContent, decode)
	ch := newChannel(t, "hook", rc.URL)
	m := notify.Message{Event: notify.EventBreakGlassUsed, Severity: notify.SeverityCritical, Service: "shop",
		Title: "Break-glass by alice", Text: "reason: outage", Fields: map[string]string{"actor": "alice"},
		Link: "http://x/a/1", DedupKey: "bg:1"}
	if err := ch.Send(t.Context(), m, 9); err != nil {
		t.Fatal(err)
	}
	bodies, headers := rc.Bodies()
	if len(bodies) != 1 {
		t.Fatalf("got %d requests", len(bodies))
	}
	var doc map[string]any
	if err := json.Unmarshal(bodies[0], &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"event", "severity", "service", "title", "text", "fields", "link", "dedup_key", "resolve", "delivery_id", "sent_at"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("body lacks %q: %s", k, bodies[0])
		}
	}
	if ts, _ := doc["sent_at"].(string); ts == "" {
		t.Errorf("sent_at = %v", doc["sent_at"])
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("sent_at %q: %v", ts, err)
	}
	if got := headers[0].Get(webhook.SignatureHeader); !strings.HasPrefix(got, "sha256=") || len(got) != len("sha256=")+64 {
		t.Errorf("signature header = %q", got)
	}
	if err := webhook.Verify([]byte("other"), bodies[0], headers[0].Get(webhook.SignatureHeader)); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("verify with the wrong secret: %v", err)
	}
	tampered := append([]byte(nil), bodies[0]...)
	tampered[len(tampered)-2] ^= 1
	if err := webhook.Verify([]byte(secret), tampered, headers[0].Get(webhook.SignatureHeader)); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("verify a tampered body: %v", err)
	}
	if headers[0].Get(webhook.EventHeader) != notify.EventBreakGlassUsed {
		t.Errorf("event header = %q", headers[0].Get(webhook.EventHeader))
	}
}

func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	// echo -n '{"a":1}' | openssl dgst -sha256 -hmac key
	got := webhook.Sign([]byte("key"), []byte(`{"a":1}`))
	want := "sha256=88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if err := webhook.Verify([]byte("key"), []byte(`{"a":1}`), got); err != nil {
		t.Fatal(err)
	}
}

func TestNewResolvesSecrets(t *testing.T) {
	t.Setenv("STEWARD_TEST_HOOK_URL", "http://127.0.0.1:1/hook")
	if _, err := webhook.New(config.Channel{Name: "h", URL: "env:STEWARD_TEST_HOOK_URL"}, notify.Deps{}); err != nil {
		t.Fatal(err)
	}
	_, err := webhook.New(config.Channel{Name: "h", URL: "env:STEWARD_TEST_HOOK_URL", Secret: "env:STEWARD_TEST_UNSET_XYZ"}, notify.Deps{})
	if err == nil || !strings.Contains(err.Error(), "STEWARD_TEST_UNSET_XYZ") {
		t.Fatalf("unset secret: %v", err)
	}
}
