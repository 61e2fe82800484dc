package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// selfCheckTimeout bounds one self-check target.
const selfCheckTimeout = 3 * time.Second

// checkTarget is one thing the agent must reach to trust its own results:
// an http(s) URL (any HTTP answer counts) or a host:port (a TCP connect).
type checkTarget struct {
	raw string
	url *url.URL // nil for host:port
}

// parseTargets parses the --self-check values.
func parseTargets(raw []string) ([]checkTarget, error) {
	var out []checkTarget
	for _, r := range raw {
		r = strings.TrimSpace(r)
		if strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://") {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("--self-check %q: not a valid URL", r)
			}
			out = append(out, checkTarget{raw: r, url: u})
			continue
		}
		host, port, err := net.SplitHostPort(r)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("--self-check %q: want an http(s):// URL or host:port, like 1.1.1.1:53 or http://192.168.1.1/", r)
		}
		out = append(out, checkTarget{raw: r})
	}
	return out, nil
}

// check reaches every target; the first failure is the reason.
func checkAll(ctx context.Context, hc *http.Client, targets []checkTarget) error {
	for _, t := range targets {
		if err := t.check(ctx, hc); err != nil {
			return err
		}
	}
	return nil
}

func (t checkTarget) check(ctx context.Context, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, selfCheckTimeout)
	defer cancel()
	if t.url == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.raw)
		if err != nil {
			return fmt.Errorf("cannot reach %s: %w", t.raw, unwrapOp(err))
		}
		c.Close()
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url.String(), nil)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", t.raw, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", t.raw, unwrapOp(err))
	}
	resp.Body.Close()
	return nil
}

// unwrapOp drops the URL and op prefixes of net errors, which the message
// already names.
func unwrapOp(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
