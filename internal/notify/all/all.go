package all

import (
	"net/http"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify"
	"github.com/stewardhq/steward/internal/notify/email"
	"github.com/stewardhq/steward/internal/notify/pagerduty"
	"github.com/stewardhq/steward/internal/notify/slack"
	"github.com/stewardhq/steward/internal/notify/webhook"
)

// Registry returns a registry of every built-in channel type.
func Registry() *notify.Registry {
	r := notify.NewRegistry()
	r.Register(webhook.Type, webhook.New)
	r.Register(slack.Type, slack.New)
	r.Register(email.Type, email.New)
	r.Register(pagerduty.Type, pagerduty.New)
	return r
}

// Build builds the configured channels with the built-in types, resolving
// their secrets; client sends the HTTP channels' requests (nil: a default
// client with a timeout).
func Build(cfg config.Notify, client *http.Client) (map[string]notify.Channel, error) {
	return Registry().Build(cfg, notify.Deps{HTTPClient: client})
}
