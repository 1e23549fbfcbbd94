//go:build linux

package demo

import "syscall"

// childAttr puts a child process in a process group of its own, so that Ctrl-C in a terminal reaches only the
// demo, which stops its children in order, and has the kernel kill the child should the demo die first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
