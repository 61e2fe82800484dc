package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/internal/config"
)

func (r *runner) dns(ctx context.Context, res *Result) {
	prog, err := r.opts.Programs.compile(config.ScopeDNS, r.p.Assert)
	if err != nil {
		res.Status, res.Error = Error, err.Error()
		return
	}
	resolver := r.opts.Resolver
	if r.p.Resolver != "" {
		addr := r.p.Resolver
		resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	name := r.p.Query
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	rt := r.p.RecordType
	if rt == "" {
		rt = "A"
	}
	start := time.Now()
	answers, err := lookup(ctx, resolver, rt, name)
	res.Phases.DNS = time.Since(start)
	res.Phases.Total = res.Phases.DNS
	if err != nil {
		via := "the system resolver"
		if r.p.Resolver != "" {
			via = r.p.Resolver
		}
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			res.Status, res.Error = Down, fmt.Sprintf("no %s record for %s (asked %s)", rt, name, via)
		default:
			res.Status, res.Error = Down, fmt.Sprintf("look up %s %s via %s: %s", rt, name, via, reason(ctx, err, via, r.timeout))
		}
		return
	}
	res.Answers = answers
	for _, e := range r.p.Expect {
		want := normalizeAnswer(e)
		if !slices.ContainsFunc(answers, func(a string) bool { return strings.EqualFold(a, want) }) {
			res.Status, res.Error = Down, fmt.Sprintf("%s %s: expected answer %q is missing (got %s)", rt, name, e, strings.Join(answers, ", "))
			return
		}
	}
	res.Status = Up
	if prog != nil {
		if msg := evaluate(prog, config.DNSEnv{Duration: res.Phases.DNS, Answers: answers}, r.p.Assert); msg != "" {
			res.Status, res.Error = Down, msg
		}
	}
}

// lookup queries one record type and returns the answers as strings:
// addresses, host names without the trailing dot, TXT strings.
func lookup(ctx context.Context, r *net.Resolver, rt, name string) ([]string, error) {
	var out []string
	switch rt {
	case "A", "AAAA":
		network := "ip4"
		if rt == "AAAA" {
			network = "ip6"
		}
		ips, err := r.LookupIP(ctx, network, name)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			out = append(out, ip.String())
		}
	case "CNAME":
		c, err := r.LookupCNAME(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, normalizeAnswer(c))
	case "MX":
		mxs, err := r.LookupMX(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, mx := range mxs {
			out = append(out, normalizeAnswer(mx.Host))
		}
	case "NS":
		nss, err := r.LookupNS(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, ns := range nss {
			out = append(out, normalizeAnswer(ns.Host))
		}
	case "TXT":
		txts, err := r.LookupTXT(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, txts...)
	default:
		return nil, fmt.Errorf("unsupported record type %s", rt)
	}
	return out, nil
}

func normalizeAnswer(s string) string { return strings.TrimSuffix(s, ".") }
