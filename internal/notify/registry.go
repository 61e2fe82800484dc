package notify

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

// Deps are what channel factories may use besides their config.
type Deps struct {
	// HTTPClient sends the HTTP channels' requests; nil means a client with
	// a 30 s timeout.
	HTTPClient *http.Client
	// TLSConfig is the base TLS configuration of SMTP connections (cloned,
	// ServerName set per server); nil means the system roots. Tests set
	// RootCAs here.
	TLSConfig *tls.Config
}

// Client returns d.HTTPClient or a default client.
func (d Deps) Client() *http.Client {
	if d.HTTPClient != nil {
		return d.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Factory builds a channel from its config. Secrets in cfg are references;
// the factory resolves them.
type Factory func(cfg config.Channel, deps Deps) (Channel, error)

// Registry maps a channel type to its factory. Build it in one place with
// explicit Register calls (internal/notify/all).
type Registry struct {
	factories map[string]Factory
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Register adds the factory of a channel type. It panics on a duplicate or
// empty type: registration is static program wiring.
func (r *Registry) Register(typ string, f Factory) {
	if typ == "" || f == nil {
		panic("notify: register: empty type or nil factory")
	}
	if _, dup := r.factories[typ]; dup {
		panic(fmt.Sprintf("notify: channel type %q registered twice", typ))
	}
	r.factories[typ] = f
}

// Types lists the registered types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.factories))
	for t := range r.factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Build builds every configured channel, keyed by name. It reports the
// first channel that cannot be built (unknown type, unresolvable secret).
func (r *Registry) Build(cfg config.Notify, deps Deps) (map[string]Channel, error) {
	out := make(map[string]Channel, len(cfg.Channels))
	for _, c := range cfg.Channels {
		if _, dup := out[c.Name]; dup {
			return nil, fmt.Errorf("notify channel %q: defined twice", c.Name)
		}
		f, ok := r.factories[c.Type]
		if !ok {
			return nil, fmt.Errorf("notify channel %q: unknown type %q (known: %v)", c.Name, c.Type, r.Types())
		}
		ch, err := f(c, deps)
		if err != nil {
			return nil, fmt.Errorf("notify channel %q: %w", c.Name, err)
		}
		out[c.Name] = ch
	}
	return out, nil
}

// ResolveSecret resolves an optional secret reference, naming the key in
// the error.
func ResolveSecret(s config.Secret, key string) (string, error) {
	if s == "" {
		return "", nil
	}
	v, err := s.Resolve()
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}
