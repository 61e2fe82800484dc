package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/store"
)

// auditPageSize is how many audit events a UI page or "load more" shows.
const auditPageSize = 50

// verifyTTL is how long the audit page reuses a verification of the whole
// log; verifying reads every event, which is costly for a large log.
const verifyTTL = time.Minute

// verifyTimeout bounds one verification for the page.
const verifyTimeout = 20 * time.Second

// auditDateLayouts are the time formats the audit filter accepts: a day
// (the date input) or a minute (the datetime-local input), in UTC.
var auditDateLayouts = []string{"2006-01-02", "2006-01-02T15:04", time.RFC3339}

// auditQuery is the audit page's filter as the form shows it.
type auditQuery struct {
	Service, Actor, Action, Since, Until string
	Seq                                  int64
}

// any reports whether a filter is set.
func (q auditQuery) Any() bool {
	return q.Service != "" || q.Actor != "" || q.Action != "" || q.Since != "" || q.Until != "" || q.Seq > 0
}

// values encodes the filter as URL parameters.
func (q auditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"service": q.Service, "actor": q.Actor, "action": q.Action, "since": q.Since, "until": q.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Seq > 0 {
		v.Set("seq", strconv.FormatInt(q.Seq, 10))
	}
	return v
}

// parseAuditTime reads a filter time; a day alone means its start for
// since and its end for until.
func parseAuditTime(name, v string, end bool) (time.Time, error) {
	for _, layout := range auditDateLayouts {
		t, err := time.ParseInLocation(layout, v, time.UTC)
		if err != nil {
			continue
		}
		if end && layout == "2006-01-02" {
			t = t.Add(24 * time.Hour)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %s must be a date like 2026-11-27 or a time like 2026-11-27T14:30 (UTC), not %q", errBadRequest, name, v)
}

// auditSearch reads the page's filter from the request.
func auditSearch(r *http.Request) (store.AuditSearch, auditQuery, error) {
	f, err := auditFilter(r, auditPageSize)
	if err != nil {
		return store.AuditSearch{}, auditQuery{}, err
	}
	q := r.URL.Query()
	aq := auditQuery{Service: strings.TrimSpace(q.Get("service")), Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until"))}
	f.Actor, f.Action = aq.Actor, aq.Action
	sf := store.AuditSearch{AuditFilter: f, Service: aq.Service}
	if v := q.Get("seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return sf, aq, fmt.Errorf("%w: seq must be an event sequence number (an integer >= 1), not %q", errBadRequest, v)
		}
		sf.Seq, aq.Seq = n, n
	}
	if aq.Since != "" {
		if sf.Since, err = parseAuditTime("since", aq.Since, false); err != nil {
			return sf, aq, err
		}
	}
	if aq.Until != "" {
		if sf.Until, err = parseAuditTime("until", aq.Until, true); err != nil {
			return sf, aq, err
		}
	}
	if !sf.Since.IsZero() && !sf.Until.IsZero() && !sf.Since.Before(sf.Until) {
		return sf, aq, fmt.Errorf("%w: since (%s) must be before until (%s)", errBadRequest, aq.Since, aq.Until)
	}
	return sf, aq, nil
}

// auditData is the audit page and its rows fragment.
type auditData struct {
	Query    auditQuery
	Services []string
	Events   []eventJSON
	More     string // URL of the next rows fragment, "" at the end
	MorePage string // the same as a full page, for browsers without JS
	Verify   verifyView
	Error    *httpError // a bad filter, shown above the form
}

func (s *Server) auditData(r *http.Request) (auditData, error) {
	f, q, err := auditSearch(r)
	d := auditData{Query: q}
	for _, svc := range s.snap.Load().services {
		d.Services = append(d.Services, svc.Name)
	}
	if err != nil {
		return d, err
	}
	recs, err := s.store.SearchAudit(r.Context(), f)
	if err != nil {
		return d, err
	}
	d.Events = make([]eventJSON, 0, len(recs))
	for _, rec := range recs {
		d.Events = append(d.Events, eventView(rec))
	}
	if next := nextBefore(f.AuditFilter, recs); next != nil && f.Seq == 0 {
		v := q.values()
		v.Set("before", fmt.Sprint(*next))
		if f.Target != "" {
			v.Set("target", f.Target)
		}
		if f.AfterSeq > 0 {
			v.Set("after", fmt.Sprint(f.AfterSeq))
		}
		d.More = "/audit/rows?" + v.Encode()
		d.MorePage = "/audit?" + v.Encode()
	}
	return d, nil
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	d, err := s.auditData(r)
	status := http.StatusOK
	if err != nil {
		if errorStatus(err).Status != http.StatusBadRequest {
			return err
		}
		// A bad filter: show the form again with what is wrong.
		he := s.fail(r, err)
		d.Error, status = &he, he.Status
	}
	d.Verify = s.verifier.view(r.Context(), s)
	s.render(w, r, status, "audit", page{Title: "Audit log", Nav: "audit", User: p.User.Name, Data: d})
	return nil
}

// auditRows answers "load more": the next rows and a new "load more" row.
func (s *Server) auditRows(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	d, err := s.auditData(r)
	if err != nil {
		return err
	}
	s.renderTemplate(w, r, http.StatusOK, "audit", "audit_rows", d)
	return nil
}

// verifyView is the audit page's integrity panel.
type verifyView struct {
	Checked    time.Time // when the verification ran
	Report     *audit.Report
	Error      string // the log could not be read
	Checkpoint *store.Checkpoint
	SignedBy   []string // the key names of the checkpoint's signatures
}

// verifyCache keeps the last verification of the audit log for verifyTTL.
// One verification runs at a time; requests meanwhile wait for it.
type verifyCache struct {
	mu   sync.Mutex
	last verifyView
}

func (c *verifyCache) view(ctx context.Context, s *Server) verifyView {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	if !c.last.Checked.IsZero() && now.Sub(c.last.Checked) < verifyTTL {
		return c.last
	}
	v := verifyView{Checked: now}
	var cps []audit.Checkpoint
	cp, err := s.store.LatestCheckpoint(ctx)
	switch {
	case err == nil:
		v.Checkpoint = &cp
		v.SignedBy = noteSigners(cp.Note)
		// The server has no verifier key: it checks that the log agrees
		// with the stored checkpoint; `steward audit verify --checkpoint`
		// checks the signature too.
		cps = append(cps, audit.Checkpoint{Size: cp.Size, Hash: cp.HeadHash, Note: []byte(cp.Note)})
	case !errors.Is(err, store.ErrNotFound):
		s.log.Warn("audit page: latest checkpoint", "err", err)
	}
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), verifyTimeout)
	defer cancel()
	rep, err := audit.Verify(vctx, audit.StoreSource(s.store), cps)
	if err != nil {
		s.log.Warn("audit page: verify", "err", err)
		v.Error = "the audit log could not be read to verify it; see the server log"
		return v // not cached: try again on the next request
	}
	v.Report = &rep
	c.last = v
	return v
}

// noteSigners returns the key names of a signed note's signature lines
// ("— name base64").
func noteSigners(note string) []string {
	var out []string
	_, sigs, ok := strings.Cut(note, "\n\n")
	if !ok {
		return nil
	}
	for _, line := range strings.Split(sigs, "\n") {
		rest, ok := strings.CutPrefix(line, "— ")
		if !ok {
			continue
		}
		if name, _, ok := strings.Cut(rest, " "); ok {
			out = append(out, name)
		}
	}
	return out
}
