//go:build !linux

package demo

import "syscall"

// childAttr keeps the default process attributes: only Linux can have a child killed when its parent dies.
func childAttr() *syscall.SysProcAttr { return nil }
