package probe

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// tcpServer accepts connections on loopback and hands each to handle.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestTCP(t *testing.T) {
	t.Parallel()
	// A line protocol: greets, then answers PING with PONG.
	redis := tcpServer(t, func(c net.Conn) {
		fmt.Fprint(c, "+READY\r\n")
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimSpace(line) == "PING" {
				fmt.Fprint(c, "+PONG\r\n")
			}
		}
	})
	mute := tcpServer(t, func(c net.Conn) { time.Sleep(5 * time.Second) })
	closes := tcpServer(t, func(c net.Conn) { fmt.Fprint(c, "BYE\n") })
	refused := freePort(t)

	tests := []struct {
		name, probe string
		status      Status
		errPart     string
	}{
		{"connect", fmt.Sprintf(`{name: a, type: tcp, address: %q}`, redis), Up, ""},
		{"send expect", fmt.Sprintf(`{name: a, type: tcp, address: %q, send: "PING\r\n", expect: ["+READY", "+PONG"], assert: "body contains 'PONG' && duration < 2s"}`, redis), Up, ""},
		{"expect missing on close", fmt.Sprintf(`{name: a, type: tcp, address: %q, expect: ["HELLO"]}`, closes), Down, `does not contain "HELLO" (got "BYE\n")`},
		{"expect never arrives", fmt.Sprintf(`{name: a, type: tcp, address: %q, expect: ["HELLO"], timeout: 1s}`, mute), Down, "timed out after 1s"},
		{"refused", fmt.Sprintf(`{name: a, type: tcp, address: %q}`, refused), Down, "connection refused by " + refused},
		{"assertion", fmt.Sprintf(`{name: a, type: tcp, address: %q, assert: "body startsWith 'HELLO'"}`, closes), Down, "assertion failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, loadProbe(t, "- "+tt.probe), Options{})
			wantStatus(t, res, tt.status, tt.errPart)
		})
	}
}
