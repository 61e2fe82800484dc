package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/notify/slack"
)

// clickBody is the form body Slack posts when slackUser clicks a Steward
// button (action_id steward_approve or steward_reject) on action id.
func clickBody(t *testing.T, slackUser, buttonID string, id int64) []byte {
	t.Helper()
	payload := map[string]any{
		"type":         "block_actions",
		"user":         map[string]string{"id": slackUser, "username": strings.ToLower(slackUser), "team_id": "T0STEWARD"},
		"team":         map[string]string{"id": "T0STEWARD", "domain": "example"},
		"api_app_id":   "A0STEWARD",
		"trigger_id":   "1234.5678.abcdef",
		"response_url": "https://hooks.slack.com/actions/T0STEWARD/1/abc",
		"container":    map[string]any{"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0OPS"},
		"actions": []map[string]string{{
			"type": "button", "action_id": buttonID, "block_id": "steward", "value": strconv.FormatInt(id, 10), "action_ts": "1700000001.000200",
		}},
	}
	js, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(url.Values{"payload": {string(js)}}.Encode())
}

// slackPost posts body as Slack would, signed with secret at time ts.
func (b *bundle) slackPost(t *testing.T, body []byte, secret string, ts time.Time) response {
	t.Helper()
	req, err := http.NewRequest("POST", b.ts.URL+"/api/v1/slack/interactions", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", slack.Signature(secret, stamp, body))
	return b.send(t, req)
}

// slackText checks a 200 ephemeral reply and returns its text.
func slackText(t *testing.T, r response) string {
	t.Helper()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("slack reply: status %d, want 200; body %s", r.StatusCode, r.body)
	}
	var reply slackReply
	mustJSON(t, r.body, &reply)
	if reply.ResponseType != "ephemeral" || reply.Text == "" {
		t.Fatalf("slack reply %s", r.body)
	}
	return reply.Text
}

func TestSlackInteractions(t *testing.T) {
	t.Parallel()
	b := setupActions(t, "")
	a := b.request(t, "release 1.2.3")
	now := time.Now()
	click := func(user, button string) string {
		t.Helper()
		return slackText(t, b.slackPost(t, clickBody(t, user, button, a.ID), slackSigningSecret, now))
	}

	// Refusals, each with what to do.
	for _, c := range []struct{ name, user, want string }{
		{"unmapped", "U0NOBODY", "Slack user U0NOBODY is not mapped to a Steward user; add `slack: U0NOBODY` to their entry in steward.yaml"},
		{"no such steward user", "UGHOST", "Steward has no user ghost; an admin adds it with `steward user add ghost`"},
		{"requester", "UALICE", "Refused: requester cannot approve their own action: alice requested action"},
		{"viewer", "UVIC", "Refused: not eligible"},
	} {
		if got := click(c.user, slack.ApproveActionID); !strings.Contains(got, c.want) {
			t.Errorf("%s: reply %q, want it to contain %q", c.name, got, c.want)
		}
	}
	// Refusals before the pipeline are audited here; the pipeline's by it.
	if n := b.countAudit(t, "slack:U0NOBODY", "action.approve", "denied"); n != 1 {
		t.Errorf("unmapped user: %d denied events", n)
	}
	if n := b.countAudit(t, "user:alice", "action.approve", "denied"); n != 1 {
		t.Errorf("requester via Slack: %d denied events", n)
	}

	// Signature problems are 401s, not replies.
	body := clickBody(t, "UBOB", slack.ApproveActionID, a.ID)
	for _, c := range []struct {
		name   string
		secret string
		ts     time.Time
		want   error
	}{
		{"bad signature", "not-the-secret", now, slack.ErrBadSignature},
		{"stale timestamp", slackSigningSecret, now.Add(-10 * time.Minute), slack.ErrStaleRequest},
		{"future timestamp", slackSigningSecret, now.Add(10 * time.Minute), slack.ErrStaleRequest},
	} {
		r := b.slackPost(t, body, c.secret, c.ts)
		var e errorBody
		mustJSON(t, r.body, &e)
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(e.Error, c.want.Error()) || e.Hint == "" || r.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: %d %s %v", c.name, r.StatusCode, r.body, r.Header)
		}
	}
	// A body altered after signing fails too.
	stamp := strconv.FormatInt(now.Unix(), 10)
	req, _ := http.NewRequest("POST", b.ts.URL+"/api/v1/slack/interactions", strings.NewReader(string(clickBody(t, "UCAROL", slack.ApproveActionID, a.ID))))
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", slack.Signature(slackSigningSecret, stamp, body))
	if r := b.send(t, req); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("altered body: %d", r.StatusCode)
	}
	if got, _ := b.actions.Get(t.Context(), a.ID); got.State != action.PendingApproval {
		t.Fatalf("refused clicks changed the action: %s", got.State)
	}

	// Mapped approvers approve.
	if got := click("UCAROL", slack.ApproveActionID); got != fmt.Sprintf("Approved action #%d (state: pending_approval); still needed: 1 more approval from role:approver", a.ID) {
		t.Errorf("carol: %q", got)
	}
	if got := click("UBOB", slack.ApproveActionID); got != fmt.Sprintf("Approved action #%d (state: approved)", a.ID) {
		t.Errorf("bob: %q", got)
	}
	votes, err := b.actions.Approvals(t.Context(), a.ID)
	if err != nil || len(votes) != 2 || votes[0].Via != viaSlack || votes[1].User != "bob" {
		t.Fatalf("votes %+v %v", votes, err)
	}
	if got := click("UBOB", slack.ApproveActionID); !strings.Contains(got, "Refused: action is no longer pending") {
		t.Errorf("late click: %q", got)
	}

	// Reject from Slack: the button carries no comment, so one is made.
	rej := b.request(t, "to be rejected")
	if got := slackText(t, b.slackPost(t, clickBody(t, "UCAROL", slack.RejectActionID, rej.ID), slackSigningSecret, now)); got != fmt.Sprintf("Rejected action #%d (state: rejected)", rej.ID) {
		t.Errorf("reject: %q", got)
	}
	votes, _ = b.actions.Approvals(t.Context(), rej.ID)
	if len(votes) != 1 || votes[0].Comment != "rejected in Slack by ucarol (UCAROL)" {
		t.Errorf("reject votes %+v", votes)
	}

	// A disabled user is refused.
	if err := b.auth.DisableUser(t.Context(), "local:test", "carol"); err != nil {
		t.Fatal(err)
	}
	third := b.request(t, "third")
	if got := slackText(t, b.slackPost(t, clickBody(t, "UCAROL", slack.ApproveActionID, third.ID), slackSigningSecret, now)); !strings.Contains(got, "Steward user carol (Slack user UCAROL) is disabled") {
		t.Errorf("disabled: %q", got)
	}

	// Other interactions are acknowledged, malformed ones refused.
	if got := slackText(t, b.slackPost(t, clickBody(t, "UBOB", "some_other_button", a.ID), slackSigningSecret, now)); !strings.Contains(got, "only handles its own") {
		t.Errorf("other button: %q", got)
	}
	if r := b.slackPost(t, []byte("payload=%7Bnot+json"), slackSigningSecret, now); r.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed payload: %d %s", r.StatusCode, r.body)
	}
	big := []byte("payload=" + strings.Repeat("x", maxSlackBody))
	if r := b.slackPost(t, big, slackSigningSecret, now); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d", r.StatusCode)
	}
}

func TestSlackNotConfigured(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{}) // no notify channels
	r := b.slackPost(t, clickBody(t, "UBOB", slack.ApproveActionID, 1), slackSigningSecret, time.Now())
	var e errorBody
	mustJSON(t, r.body, &e)
	if r.StatusCode != http.StatusNotFound || e.Error != "slack is not configured" || !strings.Contains(e.Hint, "signing secret") {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
}
