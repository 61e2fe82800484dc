package server

import (
	"fmt"

	"github.com/stewardhq/steward/internal/config"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkServicesHandler measures the server-side cost of an
// authenticated GET /api/v1/services (token cache warm), without the network.
func BenchmarkServicesHandler(b *testing.B) {
	bb := setup(b, setupOpts{config: benchConfig(50), quiet: true})
	h := bb.srv.Handler()
	req := httptest.NewRequest("GET", "/api/v1/services", nil)
	req.Header.Set("Authorization", "Bearer "+bb.viewer)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// benchConfig is n services shaped like bench/serverbench's.
func benchConfig(n int) *config.Config {
	c := &config.Config{}
	for i := range n {
		svc := testConfig().Services[0]
		svc.Name = fmt.Sprintf("service-%02d", i)
		c.Services = append(c.Services, svc)
	}
	return c
}
