package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxRequestAge is how old a signed Slack request may be; older ones are
// refused as possible replays.
const MaxRequestAge = 5 * time.Minute

// Errors of VerifyRequest and ParseInteraction.
var (
	ErrBadSignature   = errors.New("slack request signature does not match")
	ErrStaleRequest   = errors.New("slack request timestamp is too old or in the future")
	ErrNotInteraction = errors.New("not a Steward button click")
)

// VerifyRequest checks Slack's v0 request signature: X-Slack-Signature must
// be "v0=" + hex HMAC-SHA256(signingSecret, "v0:" + timestamp + ":" + body),
// compared in constant time, and X-Slack-Request-Timestamp within
// MaxRequestAge of now. body is the raw request body, read by the caller.
func VerifyRequest(r *http.Request, body []byte, signingSecret string, now time.Time) error {
	if signingSecret == "" {
		return errors.New("slack signing secret is not configured")
	}
	ts := r.Header.Get("X-Slack-Request-Timestamp")
	sig := r.Header.Get("X-Slack-Signature")
	if ts == "" || sig == "" {
		return fmt.Errorf("%w: X-Slack-Request-Timestamp or X-Slack-Signature missing", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp %q", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > MaxRequestAge || d < -MaxRequestAge {
		return fmt.Errorf("%w: %s off", ErrStaleRequest, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(sig), []byte(Signature(signingSecret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}

// Signature computes the X-Slack-Signature value of a request.
func Signature(signingSecret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write([]byte("v0:" + timestamp + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// Interaction is a click on a Steward Approve or Reject button.
type Interaction struct {
	SlackUserID   string // the member id, mapped to a Steward user by users[].slack
	SlackUserName string
	TeamID        string
	ActionID      int64  // the Steward action
	Decision      string // "approve" or "reject"
	ResponseURL   string // where to post the outcome back to the conversation
}

// Decisions carried by an Interaction.
const (
	DecisionApprove = "approve"
	DecisionReject  = "reject"
)

type interactionPayload struct {
	Type string `json:"type"`
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
	} `json:"user"`
	Team struct {
		ID string `json:"id"`
	} `json:"team"`
	ResponseURL string `json:"response_url"`
	Actions     []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
	} `json:"actions"`
}

// ParseInteraction parses the form-encoded body (payload=<json>) of a
// block_actions request and returns the Steward button clicked.
func ParseInteraction(body []byte) (Interaction, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Interaction{}, fmt.Errorf("parse slack interaction: %w", err)
	}
	raw := form.Get("payload")
	if raw == "" {
		return Interaction{}, fmt.Errorf("parse slack interaction: no payload field")
	}
	var p interactionPayload
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return Interaction{}, fmt.Errorf("parse slack interaction: %w", err)
	}
	if p.Type != "block_actions" {
		return Interaction{}, fmt.Errorf("%w: payload type %q", ErrNotInteraction, p.Type)
	}
	if p.User.ID == "" {
		return Interaction{}, fmt.Errorf("parse slack interaction: no user id")
	}
	for _, a := range p.Actions {
		var decision string
		switch a.ActionID {
		case ApproveActionID:
			decision = DecisionApprove
		case RejectActionID:
			decision = DecisionReject
		default:
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSpace(a.Value), 10, 64)
		if err != nil || id <= 0 {
			return Interaction{}, fmt.Errorf("parse slack interaction: bad action id %q", a.Value)
		}
		name := p.User.Username
		if name == "" {
			name = p.User.Name
		}
		return Interaction{SlackUserID: p.User.ID, SlackUserName: name, TeamID: p.Team.ID,
			ActionID: id, Decision: decision, ResponseURL: p.ResponseURL}, nil
	}
	return Interaction{}, fmt.Errorf("%w: no steward_approve or steward_reject action", ErrNotInteraction)
}
