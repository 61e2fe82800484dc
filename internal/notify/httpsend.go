package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// PostJSON posts body to url with the given headers and returns the response
// body (up to 64 KiB). A status other than one of ok (2xx when empty) is an
// error quoting the start of the response. It is the transport the HTTP
// channels share.
func PostJSON(ctx context.Context, client *http.Client, url string, body []byte, header http.Header, ok ...int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "steward-notify")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	good := resp.StatusCode >= 200 && resp.StatusCode < 300
	if len(ok) > 0 {
		good = false
		for _, c := range ok {
			good = good || resp.StatusCode == c
		}
	}
	if !good {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg != "" {
			return data, fmt.Errorf("HTTP %s: %s", resp.Status, msg)
		}
		return data, fmt.Errorf("HTTP %s", resp.Status)
	}
	return data, nil
}
