package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/notify/slack"
)

// serviceJSON is a service as the API shows it. It is built field by field
// from config.Service, so a secret can only appear here if someone adds it.
type serviceJSON struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Owners      []string          `json:"owners"`
	Tier        int               `json:"tier"`
	Labels      map[string]string `json:"labels"`
	Contacts    contactsJSON      `json:"contacts"`
	Databases   []databaseJSON    `json:"databases"`
}

type contactsJSON struct {
	Oncall       *contactJSON `json:"oncall,omitempty"`
	Escalation   *contactJSON `json:"escalation,omitempty"`
	ProviderNOC  *contactJSON `json:"provider_noc,omitempty"`
	ProviderSIRT *contactJSON `json:"provider_sirt,omitempty"`
}

type contactJSON struct {
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

// databaseJSON shows a database without its connection URLs: only whether
// each is set and where it comes from ("env:SHOP_DB_URL", or "inline" for a
// literal value, which is never shown).
type databaseJSON struct {
	Name             string `json:"name"`
	Engine           string `json:"engine"`
	HasURL           bool   `json:"has_url"`
	URLSource        string `json:"url_source,omitempty"`
	HasReplica       bool   `json:"has_replica"`
	ReplicaURLSource string `json:"replica_url_source,omitempty"`
}

// secretSource names where a secret comes from without its value.
func secretSource(s config.Secret) string {
	switch {
	case s == "":
		return ""
	case s.IsRef():
		return string(s)
	default:
		return "inline"
	}
}

func contactView(c config.Contact) *contactJSON {
	if c.IsZero() {
		return nil
	}
	return &contactJSON{Name: c.Name, Phone: c.Phone, Email: c.Email, URL: c.URL}
}

func serviceView(svc config.Service) serviceJSON {
	v := serviceJSON{
		Name:        svc.Name,
		Description: svc.Description,
		Owners:      slices.Clone(svc.Owners),
		Tier:        svc.Tier,
		Labels:      maps.Clone(svc.Labels),
		Contacts: contactsJSON{
			Oncall:       contactView(svc.Contacts.Oncall),
			Escalation:   contactView(svc.Contacts.Escalation),
			ProviderNOC:  contactView(svc.Contacts.ProviderNOC),
			ProviderSIRT: contactView(svc.Contacts.ProviderSIRT),
		},
		Databases: make([]databaseJSON, 0, len(svc.Databases)),
	}
	if v.Owners == nil {
		v.Owners = []string{}
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	for _, db := range svc.Databases {
		v.Databases = append(v.Databases, databaseJSON{
			Name:             db.Name,
			Engine:           db.Engine,
			HasURL:           db.URL != "",
			URLSource:        secretSource(db.URL),
			HasReplica:       db.ReplicaURL != "",
			ReplicaURLSource: secretSource(db.ReplicaURL),
		})
	}
	return v
}

// snapshot is everything derived from one configuration, computed once when
// the configuration is set so that requests only copy bytes.
type snapshot struct {
	services []serviceJSON
	byName   map[string]int    // index into services
	list     []byte            // {"services": [...]}
	listETag string            // strong ETag of list
	item     map[string][]byte // one service's JSON, by name

	// slackUsers maps a Slack member id to the Steward users that name it
	// (users[].slack); more than one is a mistake the endpoint refuses.
	slackUsers map[string][]string
	// slackSecrets are the signing secrets of the slack channels, as
	// references, resolved per request so that a rotated file or variable
	// takes effect without a reload.
	slackSecrets []slackSecret
	// slackChannels counts slack channels, with or without a secret.
	slackChannels int

	// config is the configuration itself, for the pages that need more
	// than the views above (objectives); never serialized.
	config *config.Config

	probes   []probeConf    // every configured probe, in configuration order
	probeIdx map[string]int // index into probes, by "service/probe"
}

// slackSecret is the signing secret of one slack channel.
type slackSecret struct {
	channel string
	secret  config.Secret
}

type servicesResponse struct {
	Services []serviceJSON `json:"services"`
}

func newSnapshot(c *config.Config) (*snapshot, error) {
	s := &snapshot{byName: map[string]int{}, item: map[string][]byte{}, services: []serviceJSON{}, slackUsers: map[string][]string{}, config: c}
	s.probes, s.probeIdx = probeConfs(c)
	if c != nil {
		for _, u := range c.Users {
			if u.Slack != "" {
				s.slackUsers[u.Slack] = append(s.slackUsers[u.Slack], u.Name)
			}
		}
		for _, ch := range c.Notify.Channels {
			if ch.Type != slack.Type {
				continue
			}
			s.slackChannels++
			if ch.Secret != "" {
				s.slackSecrets = append(s.slackSecrets, slackSecret{channel: ch.Name, secret: ch.Secret})
			}
		}
		for _, svc := range c.Services {
			v := serviceView(svc)
			s.byName[v.Name] = len(s.services)
			s.services = append(s.services, v)
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("encode service %s: %w", v.Name, err)
			}
			s.item[v.Name] = append(b, '\n')
		}
	}
	b, err := json.Marshal(servicesResponse{Services: s.services})
	if err != nil {
		return nil, fmt.Errorf("encode services: %w", err)
	}
	s.list = append(b, '\n')
	sum := sha256.Sum256(s.list)
	s.listETag = `"` + hex.EncodeToString(sum[:12]) + `"`
	return s, nil
}

// service returns the named service's view.
func (s *snapshot) service(name string) (serviceJSON, bool) {
	i, ok := s.byName[name]
	if !ok {
		return serviceJSON{}, false
	}
	return s.services[i], true
}
