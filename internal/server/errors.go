package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/stewardhq/steward/internal/access"
	"github.com/stewardhq/steward/internal/action"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/notify/slack"
	"github.com/stewardhq/steward/internal/store"
)

// errBadRequest marks a request the caller must fix (a bad query parameter).
var errBadRequest = errors.New("bad request")

// errTooLarge marks a request body over its limit.
var errTooLarge = errors.New("request body too large")

// errActionsDisabled answers the action routes of a server built without a
// pipeline (Options.Actions nil).
var errActionsDisabled = errors.New("actions are not enabled")

// errSlackNotConfigured answers the Slack endpoint when no slack channel
// has a signing secret.
var errSlackNotConfigured = errors.New("slack is not configured")

// errSlackSecret means a configured signing secret cannot be resolved (an
// unset variable, an unreadable file): the operator must fix the server.
var errSlackSecret = errors.New("the slack signing secret cannot be read")

const (
	reloadHint   = "reload the action (GET /api/v1/actions/ID or its page) to see its current state"
	showHint     = "see who may vote and what is still needed with GET /api/v1/actions/ID or `steward action show ID`; `steward policy test` explains the rules"
	issueHint    = "the requester issues an approved grant, once: POST /api/v1/access/grants/ACTION/issue, `steward access issue ACTION`, or Issue credentials on the action's page"
	slackSigHint = "Slack signs every request with the app's signing secret; check that the secret of the slack channel in steward.yaml is that app's signing secret and that the server clock is right"
)

// statusClientClosed is logged and counted when the client went away before
// the answer was ready (nginx's convention).
const statusClientClosed = 499

const tokenHint = "send \"Authorization: Bearer <token>\"; an admin creates a token with `steward token create USER`"

// httpError is what a caller is shown of an error: a status, a message and a
// hint on what to do next. Internal details stay in the log.
type httpError struct {
	Status  int
	Message string
	Hint    string
}

// errorStatus is the one mapping from errors to HTTP statuses, for the API
// and the UI alike. Messages of 4xx errors are meant for the caller; for 5xx
// the message is generic and the error itself goes to the log.
func errorStatus(err error) httpError {
	switch {
	case errors.Is(err, auth.ErrNoToken):
		return httpError{http.StatusUnauthorized, "no API token given", tokenHint}
	case errors.Is(err, auth.ErrExpiredToken), errors.Is(err, auth.ErrRevokedToken):
		return httpError{http.StatusUnauthorized, err.Error(), "create a new token with `steward token create USER` (an admin can do it for you)"}
	case errors.Is(err, auth.ErrInvalidToken):
		return httpError{http.StatusUnauthorized, err.Error(), "check that the whole token was copied; " + tokenHint}
	case errors.Is(err, auth.ErrUserDisabled):
		return httpError{http.StatusUnauthorized, err.Error(), "a disabled user cannot be enabled again; ask an admin for a new user"}
	case errors.Is(err, errCSRF):
		return httpError{http.StatusForbidden, err.Error(), "the form is from an old page or another site: reload the page and submit it again; if that fails, log out and log in again"}
	case errors.Is(err, auth.ErrForbidden):
		return httpError{http.StatusForbidden, err.Error(), "ask an admin for a role with that permission (`steward user roles USER ROLE...`)"}
	case errors.Is(err, errActionsDisabled):
		return httpError{http.StatusServiceUnavailable, err.Error(), "this server was started without the action pipeline; operators: pass server.Options.Actions"}
	case errors.Is(err, errAccessDisabled):
		return httpError{http.StatusServiceUnavailable, err.Error(), "this server's action pipeline has no access.grant kind; operators: register access.NewGrantKind"}
	case errors.Is(err, errSlackNotConfigured):
		return httpError{http.StatusNotFound, err.Error(), "add the Slack app's signing secret to a slack channel under notify.channels (secret: env:SLACK_SIGNING_SECRET) and reload"}
	case errors.Is(err, errSlackSecret):
		return httpError{http.StatusServiceUnavailable, err.Error(), "operators: the server log names the channel and the problem"}
	case errors.Is(err, slack.ErrBadSignature), errors.Is(err, slack.ErrStaleRequest):
		return httpError{http.StatusUnauthorized, err.Error(), slackSigHint}

	// The action pipeline's refusals. Their messages say what happened and
	// why; they are meant for the caller.
	case errors.Is(err, action.ErrSelfApproval):
		return httpError{http.StatusForbidden, err.Error(), "another eligible person must vote; to withdraw your request, cancel it"}
	case errors.Is(err, action.ErrNotEligible):
		return httpError{http.StatusForbidden, err.Error(), showHint}
	case errors.Is(err, action.ErrNoBreakGlass):
		return httpError{http.StatusForbidden, err.Error(), "request the action for approval instead (POST /api/v1/actions), or ask an admin for a role with the break_glass permission"}
	case errors.Is(err, action.ErrSelfReview):
		return httpError{http.StatusForbidden, err.Error(), "people other than the one who broke the glass must complete its review"}
	case errors.Is(err, action.ErrAlreadyDecided), errors.Is(err, action.ErrBadTransition), errors.Is(err, action.ErrReviewCompleted):
		return httpError{http.StatusConflict, err.Error(), reloadHint}
	case errors.Is(err, action.ErrNotApproved):
		return httpError{http.StatusConflict, err.Error(), showHint}
	case errors.Is(err, action.ErrPlanChanged):
		return httpError{http.StatusConflict, err.Error(), "review the new plan and vote again with its plan_hash"}
	case errors.Is(err, action.ErrExpired):
		return httpError{http.StatusConflict, err.Error(), "request the action again and execute it once approved"}
	case errors.Is(err, action.ErrFrozen):
		return httpError{http.StatusConflict, err.Error(), "wait for the freeze to end, or use break-glass if this cannot wait"}
	case errors.Is(err, store.ErrConflict):
		return httpError{http.StatusConflict, err.Error(), "someone changed it at the same moment; " + reloadHint + " and try again"}
	case errors.Is(err, action.ErrReasonRequired):
		return httpError{http.StatusBadRequest, err.Error(), "say why: \"reason\" when requesting an action, \"comment\" when rejecting, \"notes\" when completing a review"}
	case errors.Is(err, action.ErrUnknownKind), errors.Is(err, action.ErrUnknownService), errors.Is(err, action.ErrBadParams):
		return httpError{http.StatusBadRequest, err.Error(), "the message says what is accepted; fix the request and send it again"}

	// The access package's refusals.
	case errors.Is(err, access.ErrUnknownProfile), errors.Is(err, access.ErrTooLong), errors.Is(err, access.ErrUnsupported):
		return httpError{http.StatusBadRequest, err.Error(), "the message names what is configured and allowed; fix the request and send it again"}
	case errors.Is(err, access.ErrBreakGlassForbidden):
		return httpError{http.StatusForbidden, err.Error(), "request the grant for approval instead (POST /api/v1/access/grants or `steward access request`)"}
	case errors.Is(err, access.ErrNotRequester):
		return httpError{http.StatusForbidden, err.Error(), issueHint}
	case errors.Is(err, errAlreadyIssued):
		return httpError{http.StatusConflict, err.Error(), "if the connection string is lost, revoke the grant (POST /api/v1/access/grants/ID/revoke) and request a new one"}
	case errors.Is(err, access.ErrNotRevocable):
		return httpError{http.StatusConflict, err.Error(), "see the grant's state and revocation record with GET /api/v1/access/grants/ID"}
	case errors.Is(err, access.ErrRevocationPending):
		return httpError{http.StatusConflict, err.Error(), "the sweeper keeps retrying it; GET /api/v1/access/grants/ID shows the next attempt and the last error"}

	case errors.Is(err, store.ErrNotFound):
		return httpError{http.StatusNotFound, err.Error(), ""}
	case errors.Is(err, store.ErrExists):
		return httpError{http.StatusConflict, err.Error(), ""}
	case errors.Is(err, errTooLarge):
		return httpError{http.StatusRequestEntityTooLarge, err.Error(), ""}
	case errors.Is(err, errBadRequest):
		return httpError{http.StatusBadRequest, err.Error(), ""}
	case errors.Is(err, context.Canceled):
		return httpError{statusClientClosed, "request canceled", ""}
	case errors.Is(err, store.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return httpError{http.StatusServiceUnavailable, "the state store is unavailable", "try again shortly; operators: see /readyz and the server log"}
	default:
		return httpError{http.StatusInternalServerError, "internal error", "the server log has the details"}
	}
}

// errorBody is the JSON body of every API error.
type errorBody struct {
	Error     string `json:"error"`
	Hint      string `json:"hint,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// fail logs err as its status deserves and returns what the caller sees.
func (s *Server) fail(r *http.Request, err error) httpError {
	he := errorStatus(err)
	info := infoFrom(r.Context())
	switch {
	case he.Status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "request_id", info.id, "actor", info.actor, "err", err)
		if he.Hint != "" {
			he.Hint += " (request id " + info.id + ")"
		}
	case he.Status == statusClientClosed:
		s.log.Debug("request canceled by client", "method", r.Method, "path", r.URL.Path, "request_id", info.id)
	default:
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", he.Status, "actor", info.actor, "err", err)
	}
	return he
}

func (s *Server) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	he := s.fail(r, err)
	body := errorBody{Error: he.Message, Hint: he.Hint}
	if he.Status >= 500 {
		body.RequestID = infoFrom(r.Context()).id
	}
	// Slack's requests are signed, not bearer-authenticated.
	if he.Status == http.StatusUnauthorized && !errors.Is(err, slack.ErrBadSignature) && !errors.Is(err, slack.ErrStaleRequest) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="steward"`)
	}
	s.writeJSON(w, r, he.Status, body)
}

// writeJSON writes v as an indented-free JSON body with status.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode response", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "write response", slog.String("err", err.Error()))
	}
}
