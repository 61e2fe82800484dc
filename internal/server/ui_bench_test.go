package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkUIPages measures the server-side cost of the overview and the
// service page with a readiness evaluator and drill, check and grant
// history in a SQLite store (token cache warm), without the network.
func BenchmarkUIPages(b *testing.B) {
	cfg := testConfig()
	cfg.Services[0].Objectives.RTO, cfg.Services[0].Objectives.RPO = "30m", "1h"
	bb := setup(b, setupOpts{config: cfg, scorecard: true, quiet: true})
	seedService(b, bb.store, time.Now())
	h := bb.srv.Handler()
	for _, path := range []string{"/", "/services/shop"} {
		b.Run(path, func(b *testing.B) {
			req := httptest.NewRequest("GET", path, nil)
			req.AddCookie(&http.Cookie{Name: cookieName, Value: bb.viewer})
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: status %d", path, w.Code)
				}
			}
		})
	}
}
