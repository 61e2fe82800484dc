package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/notify/slack"
	"github.com/stewardhq/steward/internal/policy"
	"github.com/stewardhq/steward/internal/store"
)

// maxSlackBody bounds a Slack interaction request. A block_actions payload
// carries the message that was clicked: a few kilobytes.
const maxSlackBody = 256 << 10

// slackReply is the JSON answer to a Slack interaction: a message only the
// person who clicked sees.
type slackReply struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
}

// slackInteraction answers a click on an Approve or Reject button of a
// Steward Slack message. There is no bearer token: the request is
// authenticated by Slack's signature with the signing secret of a
// configured slack channel, and the person by the Slack member id mapped to
// a Steward user with users[].slack. Once the signature is good the answer
// is always 200 (Slack shows nothing for other statuses); refusals are
// explained in the ephemeral reply.
func (s *Server) slackInteraction(w http.ResponseWriter, r *http.Request) {
	snap := s.snap.Load()
	if len(snap.slackSecrets) == 0 {
		err := errSlackNotConfigured
		if snap.slackChannels > 0 {
			err = fmt.Errorf("%w: no slack channel has a signing secret", errSlackNotConfigured)
		}
		s.writeAPIError(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSlackBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fmt.Errorf("%w: a Slack interaction is at most %d bytes", errTooLarge, tooBig.Limit)
		}
		s.writeAPIError(w, r, err)
		return
	}
	if err := s.verifySlack(r, body, snap); err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	in, err := slack.ParseInteraction(body)
	switch {
	case errors.Is(err, slack.ErrNotInteraction):
		s.slackReply(w, r, "Steward only handles its own Approve and Reject buttons.")
		return
	case err != nil:
		s.writeAPIError(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	s.slackReply(w, r, s.slackVote(r, snap, in))
}

func (s *Server) slackReply(w http.ResponseWriter, r *http.Request, text string) {
	s.writeJSON(w, r, http.StatusOK, slackReply{ResponseType: "ephemeral", Text: text})
}

// verifySlack accepts a request signed with the signing secret of any
// slack channel (several Slack apps may post to one Steward).
func (s *Server) verifySlack(r *http.Request, body []byte, snap *snapshot) error {
	now := s.now()
	var verr error
	for _, sec := range snap.slackSecrets {
		v, err := sec.secret.Resolve()
		if err == nil && v == "" {
			err = errors.New("it is empty")
		}
		if err != nil {
			s.log.Error("slack signing secret unavailable", "channel", sec.channel, "ref", secretSource(sec.secret), "err", err)
			continue
		}
		err = slack.VerifyRequest(r, body, v, now)
		if err == nil {
			return nil
		}
		if errors.Is(err, slack.ErrStaleRequest) {
			return err // the same for every secret
		}
		verr = err
	}
	if verr == nil {
		return errSlackSecret
	}
	return verr
}

// slackVote maps the Slack user to a Steward principal, votes, and says
// what happened.
func (s *Server) slackVote(r *http.Request, snap *snapshot, in slack.Interaction) string {
	ctx := r.Context()
	id := in.SlackUserID
	refuse := func(why, text string) string {
		// The pipeline never sees these attempts, so record them here.
		if err := s.audit(ctx, "slack:"+id, "action."+in.Decision, fmt.Sprintf("action:%d", in.ActionID), "denied",
			map[string]any{"via": viaSlack, "why": why, "slack_user_name": in.SlackUserName, "slack_team": in.TeamID}); err != nil {
			s.log.Error("record refused slack vote", "slack_user", id, "err", err)
		}
		return text
	}
	names := snap.slackUsers[id]
	switch len(names) {
	case 0:
		return refuse("unmapped slack user", fmt.Sprintf("Slack user %s is not mapped to a Steward user; add `slack: %s` to their entry in steward.yaml", id, id))
	case 1:
	default:
		return refuse("slack user mapped twice", fmt.Sprintf("Slack user %s is mapped to several Steward users (%s); keep `slack: %s` on one entry of users in steward.yaml", id, strings.Join(names, ", "), id))
	}
	u, err := s.store.GetUser(ctx, names[0])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse("unknown steward user", fmt.Sprintf("Slack user %s is mapped to %s in steward.yaml, but Steward has no user %s; an admin adds it with `steward user add %s`", id, names[0], names[0], names[0]))
	case err != nil:
		he := s.fail(r, err)
		return fmt.Sprintf("Steward could not look up your user: %s. %s", he.Message, he.Hint)
	case u.Disabled():
		return refuse("disabled steward user", fmt.Sprintf("Steward user %s (Slack user %s) is disabled and cannot vote", u.Name, id))
	}
	p := s.auth.Principal(u, 0, false)
	infoFrom(ctx).actor = p.Actor()
	if s.actions == nil {
		return "Actions are not enabled on this Steward server; nothing was recorded."
	}
	v := action.Vote{Via: viaSlack}
	vote, verb := s.actions.Approve, "Approved"
	if in.Decision == slack.DecisionReject {
		// A button carries no comment; a rejection needs one.
		vote, verb = s.actions.Reject, "Rejected"
		v.Comment = "rejected in Slack by " + slackName(in)
	}
	a, d, err := vote(ctx, p, in.ActionID, v)
	if err != nil {
		return slackRefusal(s.fail(r, err))
	}
	return slackOutcome(verb, a, d)
}

func slackName(in slack.Interaction) string {
	if in.SlackUserName != "" {
		return in.SlackUserName + " (" + in.SlackUserID + ")"
	}
	return in.SlackUserID
}

func slackRefusal(he httpError) string {
	text := "Refused: " + he.Message
	if he.Hint != "" {
		text += "\n" + he.Hint
	}
	return text
}

func slackOutcome(verb string, a *action.Action, d policy.Decision) string {
	text := fmt.Sprintf("%s action #%d (state: %s)", verb, a.ID, a.State)
	if a.State == action.PendingApproval && d.Missing != "" {
		text += "; still needed: " + d.Missing
	}
	return text
}
