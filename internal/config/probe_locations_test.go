package config

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestProbeLocationsAndQuorumDefaults(t *testing.T) {
	t.Parallel()
	src := `steward:
  allow_inline_secrets: true
services:
  - name: shop
    probes:
      - {name: one, type: tcp, address: "127.0.0.1:1"}
      - {name: two, type: tcp, address: "127.0.0.1:1", locations: [eu-west, us-east]}
      - {name: three, type: tcp, address: "127.0.0.1:1", locations: [local, eu-west, us-east]}
      - {name: four, type: http, url: "http://127.0.0.1:1/", locations: [local, eu-west, us-east, ap-south], quorum: 1, bearer_token: inline-token, headers: {X-Api-Key: env:KEY}}
`
	cfg, err := Parse(filepath.Join(t.TempDir(), "steward.yaml"), []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		locations []string
		quorum    int
	}{{[]string{"local"}, 1}, {[]string{"eu-west", "us-east"}, 2}, {[]string{"local", "eu-west", "us-east"}, 2}, {[]string{"local", "eu-west", "us-east", "ap-south"}, 1}}
	for i, w := range want {
		p := &cfg.Services[0].Probes[i]
		if !slices.Equal(p.Locations, w.locations) || p.Quorum != w.quorum || p.QuorumSize() != w.quorum {
			t.Errorf("%s: locations %v quorum %d, want %v %d", p.Name, p.Locations, p.Quorum, w.locations, w.quorum)
		}
	}
	ps := cfg.Services[0].Probes
	if ps[0].RunsAt("eu-west") || !ps[0].RunsAt(LocalLocation) || ps[1].RunsAt(LocalLocation) || !ps[1].RunsAt("us-east") {
		t.Error("RunsAt does not follow locations")
	}
	if got := ps[3].InlineSecrets(); !slices.Equal(got, []string{"bearer_token"}) {
		t.Errorf("inline secrets of four = %v, want [bearer_token] (the header is a reference)", got)
	}
	if got := ps[0].InlineSecrets(); len(got) != 0 {
		t.Errorf("inline secrets of one = %v", got)
	}
}
