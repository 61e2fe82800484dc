//go:build !unix

package backup

import "os/exec"

// killGroup is a no-op where process groups do not exist.
func killGroup(*exec.Cmd) {}
