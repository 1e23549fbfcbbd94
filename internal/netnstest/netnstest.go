//go:build linux

// Package netnstest gives tests throwaway network namespaces: it creates
// them, runs commands and Go code inside them, and removes them when the
// test ends, on every exit path. Tests that use it need root; under CI=true
// a test without root fails instead of skipping (see NeedRoot).
package netnstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// commandTimeout bounds every command a test runs through this package.
const commandTimeout = 20 * time.Second

// NeedRoot skips t unless the process runs as root. Under CI=true, where
// tests run as root, a missing root is a failure instead: root-only tests
// must run there, not skip.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces, packet sockets); CI=true makes that a failure")
	}
	t.Skip("needs root (network namespaces, packet sockets); run as root, or with CI=true to fail instead")
}

// NeedTools fails t when one of the commands is not on PATH (make test
// installs them through hack/).
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (hack/ installs it for make test): %v", tool, err)
		}
	}
}

// NS is a network namespace that exists until its test ends.
type NS struct {
	Name   string         // its name under /run/netns
	Handle netns.NsHandle // open for the test's lifetime
}

var seq atomic.Int64

// New creates a namespace named htest-<tag>-<pid>-<n>, with lo up, and
// removes it when t ends. It calls NeedRoot first.
func New(t testing.TB, tag string) *NS {
	t.Helper()
	NeedRoot(t)
	name := fmt.Sprintf("htest-%s-%d-%d", tag, os.Getpid(), seq.Add(1))
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	n := &NS{Name: name, Handle: h}
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Run runs a command in the test's own namespace and returns its combined
// output; t fails when the command fails or outlasts 20 s.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs a command inside n (ip netns exec) and returns its combined
// output; t fails when the command fails.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Shell runs script with sh -ec inside n; t fails when it fails.
func (n *NS) Shell(t testing.TB, script string) string {
	t.Helper()
	return n.Run(t, "sh", "-ec", script)
}

// Do runs fn on a fresh OS thread switched into n and returns its error.
// The thread stays locked and dies with its goroutine, so nothing else ever
// runs in n by accident. Sockets fn opens stay in n.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(n.Handle); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
