package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

// apiGet calls GET path on the server; see apiCall.
func (g *globalOptions) apiGet(ctx context.Context, path string, v any) error {
	return g.apiCall(ctx, http.MethodGet, path, nil, v)
}

// apiCall calls the Steward server at --server with --token, sending body
// as JSON (when not nil) and decoding the JSON answer into v (when not nil).
// The server's error bodies become CLI errors with the matching exit codes.
func (g *globalOptions) apiCall(ctx context.Context, method, path string, body, v any) error {
	if g.Token == "" {
		return fmt.Errorf("%w: pass --token or set STEWARD_TOKEN (create one with `steward token create USER` on the server host)", auth.ErrNoToken)
	}
	base := strings.TrimSuffix(g.Server, "/")
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return usagef("--server %q: %v", g.Server, err)
	}
	req.Header.Set("Authorization", "Bearer "+g.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("server %s: %w; check that `steward serve` runs there", base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("server %s: read answer: %w", base, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
			Hint  string `json:"hint"`
		}
		_ = json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		if e.Hint != "" {
			msg += "; " + e.Hint
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: server says: %s", auth.ErrInvalidToken, msg)
		case http.StatusForbidden:
			return fmt.Errorf("%w: server says: %s", auth.ErrForbidden, msg)
		case http.StatusNotFound:
			return fmt.Errorf("%w: server says: %s", store.ErrNotFound, msg)
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
			return usageError{fmt.Errorf("server says: %s", msg)}
		default:
			return fmt.Errorf("server %s%s: %s: %s", base, path, resp.Status, msg)
		}
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("server %s%s: decode answer: %w", base, path, err)
		}
	}
	return nil
}
