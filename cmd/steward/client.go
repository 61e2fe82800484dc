package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/auth"
)

// apiGet calls the Steward server at --server with --token and decodes the
// JSON answer into v, turning the server's error bodies into CLI errors.
func (g *globalOptions) apiGet(ctx context.Context, path string, v any) error {
	if g.Token == "" {
		return fmt.Errorf("%w: pass --token or set STEWARD_TOKEN (create one with `steward token create USER` on the server host)", auth.ErrNoToken)
	}
	base := strings.TrimSuffix(g.Server, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return usagef("--server %q: %v", g.Server, err)
	}
	req.Header.Set("Authorization", "Bearer "+g.Token)
	req.Header.Set("Accept", "application/json")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("server %s: %w; check that `steward serve` runs there", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("server %s: read answer: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
			Hint  string `json:"hint"`
		}
		_ = json.Unmarshal(body, &e)
		msg := e.Error
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		if e.Hint != "" {
			msg += "; " + e.Hint
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%w: server says: %s", auth.ErrInvalidToken, msg)
		case http.StatusForbidden:
			return fmt.Errorf("%w: server says: %s", auth.ErrForbidden, msg)
		default:
			return fmt.Errorf("server %s%s: %s: %s", base, path, resp.Status, msg)
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("server %s%s: decode answer: %w", base, path, err)
	}
	return nil
}
