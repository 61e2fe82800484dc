package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/stewardhq/steward/internal/server"
)

// ErrAuth means the server refused the agent's token or its permission:
// retrying cannot help, so the agent stops.
var ErrAuth = errors.New("the server refused the agent's token")

// errUnreachable wraps failures to reach the server at all, and its 5xx
// answers: the agent keeps probing and buffering, and retries.
var errUnreachable = errors.New("server unreachable")

// errTooLarge is a 413 answer to an upload.
var errTooLarge = errors.New("upload too large")

// RejectedError is a 400 answer to an upload that names the refused
// results.
type RejectedError struct {
	Message  string
	Rejected []server.AgentRejection
}

func (e *RejectedError) Error() string { return "server refused the upload: " + e.Message }

// client talks to the server's agent API.
type client struct {
	base  string
	token string
	hc    *http.Client
}

// apiError is the server's error body.
type apiError struct {
	Error string `json:"error"`
	Hint  string `json:"hint"`
}

func (c *client) do(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s %s: %w", errUnreachable, method, c.base+path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s %s: read answer: %w", errUnreachable, method, c.base+path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		var e apiError
		_ = json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = errText(data)
		}
		return resp, data, fmt.Errorf("%w (%s): %s; pass --token with a token of a user whose role has the probe.agent permission (an admin creates one with `steward token create USER`)", ErrAuth, resp.Status, e.Error)
	case resp.StatusCode >= 500:
		return resp, data, fmt.Errorf("%w: %s %s: %s: %s", errUnreachable, method, c.base+path, resp.Status, errText(data))
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return resp, data, fmt.Errorf("%w: %s", errTooLarge, errText(data))
	}
	return resp, data, nil
}

func errText(data []byte) string {
	var e apiError
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		if e.Hint != "" {
			return e.Error + "; " + e.Hint
		}
		return e.Error
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// assignments fetches the location's probes; notModified when etag is
// still current.
func (c *client) assignments(ctx context.Context, location, etag string) (a server.AgentAssignments, newETag string, notModified bool, err error) {
	h := http.Header{}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	resp, data, err := c.do(ctx, http.MethodGet, "/api/v1/agent/assignments?location="+url.QueryEscape(location), nil, h)
	if err != nil {
		return a, "", false, err
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		return a, etag, true, nil
	case http.StatusOK:
	default:
		return a, "", false, fmt.Errorf("fetch assignments of %s: %s: %s", location, resp.Status, errText(data))
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, "", false, fmt.Errorf("fetch assignments of %s: decode: %w", location, err)
	}
	return a, resp.Header.Get("ETag"), false, nil
}

func (c *client) heartbeat(ctx context.Context, hb server.AgentHeartbeat) (server.AgentHeartbeatAnswer, error) {
	var ans server.AgentHeartbeatAnswer
	resp, data, err := c.do(ctx, http.MethodPost, "/api/v1/agent/heartbeat", hb, nil)
	if err != nil {
		return ans, err
	}
	if resp.StatusCode != http.StatusOK {
		return ans, fmt.Errorf("heartbeat: %s: %s", resp.Status, errText(data))
	}
	if err := json.Unmarshal(data, &ans); err != nil {
		return ans, fmt.Errorf("heartbeat: decode answer: %w", err)
	}
	return ans, nil
}

func (c *client) upload(ctx context.Context, location string, results []server.AgentResult) (server.AgentResultsAnswer, error) {
	var ans server.AgentResultsAnswer
	resp, data, err := c.do(ctx, http.MethodPost, "/api/v1/agent/results", server.AgentResults{Location: location, Results: results}, nil)
	if err != nil {
		return ans, err
	}
	_ = json.Unmarshal(data, &ans)
	switch resp.StatusCode {
	case http.StatusOK:
		return ans, nil
	case http.StatusBadRequest:
		return ans, &RejectedError{Message: errText(data), Rejected: ans.Rejected}
	default:
		return ans, fmt.Errorf("upload results: %s: %s", resp.Status, errText(data))
	}
}
