// Command steward rehearses restores, guards data fixes and access, probes
// services and keeps a tamper-evident audit log. This package only wires
// commands to the internal packages; see docs/ for how to use it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
