//go:build unix

package backup

import (
	"os/exec"
	"syscall"
)

// killGroup makes cancelling cmd kill its whole process group, so that the
// children of a shell command do not outlive it.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
