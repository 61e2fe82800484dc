package notifytest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/notify"
)

// Behavior is how a test receiver answers.
type Behavior int

// Behaviors of a receiver.
const (
	Accept Behavior = iota // take every message
	Reject                 // answer with a server error (HTTP 503, SMTP 554)
	Hang                   // take the connection and never answer
)

// Received is a message as the receiver decoded it from the wire.
type Received struct {
	Title      string // the summary as shown, including any "Resolved" marker
	Event      string // "" when the format does not carry it
	DedupKey   string // "" when the format does not carry it
	Resolve    bool
	DeliveryID int64 // 0 when the format does not carry it
}

// Harness adapts one channel type to the suite.
type Harness struct {
	// Start starts a real receiver on loopback that behaves as b, and
	// returns a channel called name that sends to it and a function that
	// returns what the receiver has accepted so far.
	Start func(t *testing.T, name string, b Behavior) (notify.Channel, func() []Received)
}

// Run runs the conformance suite against the channel type of h.
func Run(t *testing.T, typ string, h Harness) {
	t.Helper()
	msg := notify.Message{
		Event: notify.EventActionPending, Severity: notify.SeverityWarning, Service: "shop",
		Title: "Approve deploy of shop 1.2.3", Text: "ci requested a deploy.\nReason: release",
		Fields: map[string]string{"requester": "ci", "risk": "medium"}, Link: "http://127.0.0.1:8080/actions/7",
		DedupKey: "action:7", ActionID: 7, Buttons: true,
	}
	t.Run("NameAndType", func(t *testing.T) {
		t.Parallel()
		ch, _ := h.Start(t, "ops-"+typ, Accept)
		if ch.Name() != "ops-"+typ || ch.Type() != typ {
			t.Fatalf("Name, Type = %q, %q; want %q, %q", ch.Name(), ch.Type(), "ops-"+typ, typ)
		}
	})
	t.Run("Send", func(t *testing.T) {
		t.Parallel()
		ch, got := h.Start(t, "ops", Accept)
		if err := ch.Send(t.Context(), msg, 42); err != nil {
			t.Fatalf("send: %v", err)
		}
		r := got()
		if len(r) != 1 {
			t.Fatalf("receiver got %d messages, want 1: %+v", len(r), r)
		}
		check(t, r[0], msg, 42)
		if r[0].Resolve {
			t.Errorf("message arrived as a resolve: %+v", r[0])
		}
	})
	t.Run("Resolve", func(t *testing.T) {
		t.Parallel()
		ch, got := h.Start(t, "ops", Accept)
		if err := ch.Send(t.Context(), msg, 1); err != nil {
			t.Fatalf("send: %v", err)
		}
		res := msg
		res.Resolve, res.Buttons = true, false
		if err := ch.Send(t.Context(), res, 2); err != nil {
			t.Fatalf("send resolve: %v", err)
		}
		r := got()
		if len(r) != 2 {
			t.Fatalf("receiver got %d messages, want 2: %+v", len(r), r)
		}
		check(t, r[1], msg, 2)
		if r[0].Resolve || !r[1].Resolve {
			t.Fatalf("resolve flags = %v, %v; want false, true", r[0].Resolve, r[1].Resolve)
		}
	})
	t.Run("ServerError", func(t *testing.T) {
		t.Parallel()
		ch, got := h.Start(t, "down-"+typ, Reject)
		err := ch.Send(t.Context(), msg, 3)
		if err == nil {
			t.Fatalf("send to a failing receiver succeeded; got %+v", got())
		}
		if !strings.Contains(err.Error(), "down-"+typ) {
			t.Fatalf("error %q does not name the channel", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		ch, _ := h.Start(t, "hung-"+typ, Hang)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := ch.Send(ctx, msg, 4)
		if err == nil {
			t.Fatal("send to a receiver that never answers succeeded")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("send returned after %s; it must return when its context ends", d)
		}
		if !strings.Contains(err.Error(), "hung-"+typ) {
			t.Fatalf("error %q does not name the channel", err)
		}
	})
}

func check(t *testing.T, r Received, m notify.Message, deliveryID int64) {
	t.Helper()
	if !strings.Contains(r.Title, m.Title) {
		t.Errorf("title %q does not contain %q", r.Title, m.Title)
	}
	if r.Event != "" && r.Event != m.Event {
		t.Errorf("event = %q, want %q", r.Event, m.Event)
	}
	if r.DedupKey != "" && r.DedupKey != m.DedupKey {
		t.Errorf("dedup key = %q, want %q", r.DedupKey, m.DedupKey)
	}
	if r.DeliveryID != 0 && r.DeliveryID != deliveryID {
		t.Errorf("delivery id = %d, want %d", r.DeliveryID, deliveryID)
	}
}

// HTTPReceiver is a loopback HTTP server standing in for a webhook target,
// Slack or PagerDuty. Decode turns each accepted request into a Received.
type HTTPReceiver struct {
	URL string

	mu       sync.Mutex
	behavior Behavior
	okStatus int
	decode   func(t *testing.T, r *http.Request, body []byte) Received
	got      []Received
	bodies   [][]byte
	headers  []http.Header
	requests int
}

// NewHTTPReceiver starts a receiver answering okStatus (200 when 0) to
// accepted requests; it stops when the test ends.
func NewHTTPReceiver(t *testing.T, b Behavior, okStatus int, decode func(t *testing.T, r *http.Request, body []byte) Received) *HTTPReceiver {
	t.Helper()
	if okStatus == 0 {
		okStatus = http.StatusOK
	}
	rc := &HTTPReceiver{behavior: b, okStatus: okStatus, decode: decode}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.requests++
		b := rc.behavior
		rc.mu.Unlock()
		switch b {
		case Reject:
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		case Hang:
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		got := rc.decode(t, r, body)
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		rc.bodies = append(rc.bodies, body)
		rc.headers = append(rc.headers, r.Header.Clone())
		rc.mu.Unlock()
		w.WriteHeader(rc.okStatus)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	rc.URL = srv.URL
	return rc
}

// SetBehavior changes how the receiver answers from now on.
func (rc *HTTPReceiver) SetBehavior(b Behavior) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.behavior = b
}

// Received returns the accepted messages.
func (rc *HTTPReceiver) Received() []Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Received(nil), rc.got...)
}

// Bodies returns the raw bodies and headers of the accepted requests.
func (rc *HTTPReceiver) Bodies() ([][]byte, []http.Header) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...), append([]http.Header(nil), rc.headers...)
}

// Requests counts every request, accepted or not.
func (rc *HTTPReceiver) Requests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}
