package slack_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/notifytest"
	"github.com/stewardhq/steward/internal/notify/slack"
)

func decode(t *testing.T, r *http.Request, body []byte) notifytest.Received {
	var m slack.Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("slack body is not JSON: %v", err)
	}
	if len(m.Blocks) == 0 || m.Blocks[0].Type != "header" || m.Blocks[0].Text == nil {
		t.Errorf("first block is not a header: %s", body)
		return notifytest.Received{}
	}
	title := m.Blocks[0].Text.Text
	return notifytest.Received{Title: title, Resolve: strings.HasPrefix(title, "Resolved: ")}
}

func newChannel(t *testing.T, name, u string) notify.Channel {
	t.Helper()
	ch, err := slack.New(config.Channel{Name: name, Type: slack.Type, URL: config.Secret(u)}, notify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestConformance(t *testing.T) {
	t.Parallel()
	notifytest.Run(t, slack.Type, notifytest.Harness{
		Start: func(t *testing.T, name string, b notifytest.Behavior) (notify.Channel, func() []notifytest.Received) {
			rc := notifytest.NewHTTPReceiver(t, b, 0, decode)
			return newChannel(t, name, rc.URL), rc.Received
		},
	})
}

func TestBlocksAndButtons(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewHTTPReceiver(t, notifytest.Accept, 0, decode)
	ch := newChannel(t, "ops-slack", rc.URL)
	m := notify.Message{Event: notify.EventActionPending, Severity: notify.SeverityWarning, Service: "shop",
		Title: "Approve deploy.gate #12", Text: "ci wants to deploy <1.2.3>", Fields: map[string]string{"risk": "medium", "requester": "ci"},
		Link: "http://127.0.0.1:8080/actions/12", ActionID: 12, Buttons: true}
	if err := ch.Send(t.Context(), m, 1); err != nil {
		t.Fatal(err)
	}
	bodies, headers := rc.Bodies()
	if ct := headers[0].Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var doc struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type    string `json:"type"`
			BlockID string `json:"block_id"`
			Text    *struct {
				Type, Text string
			} `json:"text"`
			Fields []struct {
				Type, Text string
			} `json:"fields"`
			Elements []map[string]any `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(bodies[0], &doc); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, b := range doc.Blocks {
		types = append(types, b.Type)
	}
	if got := strings.Join(types, ","); got != "header,section,section,context,actions" {
		t.Fatalf("block types = %s; body %s", got, bodies[0])
	}
	if doc.Text != m.Title || doc.Blocks[0].Text.Type != "plain_text" {
		t.Errorf("fallback text / header: %s", bodies[0])
	}
	if !strings.Contains(doc.Blocks[1].Text.Text, "&lt;1.2.3&gt;") {
		t.Errorf("section text not escaped: %q", doc.Blocks[1].Text.Text)
	}
	if len(doc.Blocks[2].Fields) != 2 || doc.Blocks[2].Fields[0].Text != "*requester*\nci" {
		t.Errorf("fields: %+v", doc.Blocks[2].Fields)
	}
	act := doc.Blocks[4]
	if len(act.Elements) != 2 {
		t.Fatalf("actions: %+v", act)
	}
	for i, want := range []string{slack.ApproveActionID, slack.RejectActionID} {
		e := act.Elements[i]
		if e["type"] != "button" || e["action_id"] != want || e["value"] != "12" {
			t.Errorf("button %d = %v, want action_id %s value 12", i, e, want)
		}
	}
	// A resolve carries no buttons and says so.
	m.Resolve = true
	r := slack.Render(m)
	if r.Blocks[0].Text.Text != "Resolved: "+m.Title || r.Blocks[len(r.Blocks)-1].Type == "actions" {
		t.Fatalf("resolve render: %+v", r.Blocks)
	}
}

func sign(secret string, ts time.Time, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/slack/interact", nil)
	s := strconv.FormatInt(ts.Unix(), 10)
	r.Header.Set("X-Slack-Request-Timestamp", s)
	r.Header.Set("X-Slack-Signature", slack.Signature(secret, s, body))
	return r
}

func TestVerifyRequest(t *testing.T) {
	t.Parallel()
	const secret = "8f742231b10e8888abcd99yyyzzz85a5"
	body := []byte("payload=%7B%22type%22%3A%22block_actions%22%7D")
	now := time.Unix(1_700_000_000, 0)
	if err := slack.VerifyRequest(sign(secret, now.Add(-time.Minute), body), body, secret, now); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	for name, tc := range map[string]struct {
		r    *http.Request
		body []byte
		want error
	}{
		"wrong secret": {sign("other", now, body), body, slack.ErrBadSignature},
		"tampered":     {sign(secret, now, body), append([]byte("x"), body...), slack.ErrBadSignature},
		"stale":        {sign(secret, now.Add(-6*time.Minute), body), body, slack.ErrStaleRequest},
		"future":       {sign(secret, now.Add(6*time.Minute), body), body, slack.ErrStaleRequest},
		"unsigned":     {httptest.NewRequest(http.MethodPost, "/", nil), body, slack.ErrBadSignature},
	} {
		if err := slack.VerifyRequest(tc.r, tc.body, secret, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	if err := slack.VerifyRequest(sign("", now, body), body, "", now); err == nil {
		t.Error("empty signing secret accepted")
	}
}

// TestSignatureKnownVector checks the v0 scheme against Slack's documented
// example (api.slack.com/authentication/verifying-requests-from-slack).
func TestSignatureKnownVector(t *testing.T) {
	t.Parallel()
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := slack.Signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", []byte(body))
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
}

func interactionBody(payload string) []byte {
	return []byte(url.Values{"payload": {payload}}.Encode())
}

func TestParseInteraction(t *testing.T) {
	t.Parallel()
	p := `{"type":"block_actions","user":{"id":"U012AB3CD","username":"alice"},"team":{"id":"T1"},
		"response_url":"https://hooks.slack.com/actions/T1/1/abc",
		"actions":[{"action_id":"steward_reject","block_id":"steward_action_12","value":"12","type":"button"}]}`
	in, err := slack.ParseInteraction(interactionBody(p))
	if err != nil {
		t.Fatal(err)
	}
	want := slack.Interaction{SlackUserID: "U012AB3CD", SlackUserName: "alice", TeamID: "T1", ActionID: 12,
		Decision: slack.DecisionReject, ResponseURL: "https://hooks.slack.com/actions/T1/1/abc"}
	if in != want {
		t.Fatalf("interaction = %+v, want %+v", in, want)
	}
	for name, body := range map[string][]byte{
		"no payload":     []byte("foo=bar"),
		"not json":       interactionBody("{"),
		"other type":     interactionBody(`{"type":"view_submission","user":{"id":"U1"}}`),
		"other action":   interactionBody(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"x","value":"1"}]}`),
		"bad action id":  interactionBody(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"steward_approve","value":"abc"}]}`),
		"no user":        interactionBody(`{"type":"block_actions","actions":[{"action_id":"steward_approve","value":"1"}]}`),
		"negative value": interactionBody(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"steward_approve","value":"-1"}]}`),
	} {
		if _, err := slack.ParseInteraction(body); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func FuzzParseInteraction(f *testing.F) {
	f.Add(interactionBody(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"steward_approve","value":"1"}]}`))
	f.Add([]byte("payload=%7B%7D"))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := slack.ParseInteraction(body)
		if err == nil && (in.ActionID <= 0 || in.SlackUserID == "" || (in.Decision != slack.DecisionApprove && in.Decision != slack.DecisionReject)) {
			t.Fatalf("accepted an incomplete interaction: %+v", in)
		}
	})
}
