package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stewardhq/steward/internal/notify/webhook"
)

// Receiver stands in for the team's alerting endpoint: a webhook receiver
// on loopback that checks every delivery's signature and counts what
// arrived, once per delivery id.
type Receiver struct {
	URL    string
	secret []byte
	srv    *http.Server

	mu       sync.Mutex
	seen     map[string]bool
	events   []webhook.Payload
	rejected int
}

// StartReceiver listens on a free loopback port and writes the URL and the
// signing secret into the workspace files the demo config references
// (webhook.url, webhook.secret), so each demo run points the channel at
// its own receiver.
func StartReceiver(dir string) (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	r := &Receiver{URL: "http://" + ln.Addr().String() + "/hooks/steward", secret: []byte(hex.EncodeToString(key)), seen: map[string]bool{}}
	if err := os.WriteFile(filepath.Join(dir, "webhook.url"), []byte(r.URL+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "webhook.secret"), append(r.secret, '\n'), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return
		}
	}()
	return r, nil
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := webhook.Verify(r.secret, body, req.Header.Get(webhook.SignatureHeader)); err != nil {
		r.rejected++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := req.Header.Get(webhook.DeliveryHeader)
	if !r.seen[id] {
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		r.seen[id] = true
		r.events = append(r.events, p)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Events returns the distinct deliveries received so far.
func (r *Receiver) Events() []webhook.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Payload(nil), r.events...)
}

// Rejected counts deliveries with a bad signature.
func (r *Receiver) Rejected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected
}

// Close stops the receiver.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}
