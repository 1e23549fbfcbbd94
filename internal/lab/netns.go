package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps the bind mounts that name network namespaces.
const netnsDir = "/run/netns"

// stalePrefix matches the namespaces of a lab with a default prefix, hl<pid> or hl<pid>x<k>, and captures the pid.
var stalePrefix = regexp.MustCompile(`^hl([0-9]+)(x[0-9]+)?-`)

// addNetns creates the named network namespace with `ip netns add` and opens a handle to it.
func addNetns(ctx context.Context, name string) (netns.NsHandle, error) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return netns.None(), fmt.Errorf("creating network namespace %s: %w: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return netns.None(), errors.Join(fmt.Errorf("opening network namespace %s: %w", name, err), delNetns(name))
	}
	return h, nil
}

// delNetns removes the name of a network namespace; the kernel frees it once no process or socket uses it.
func delNetns(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("deleting network namespace %s: %w: %s", name, err, out)
	}
	return nil
}

// listNetns lists the named network namespaces.
func listNetns() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing network namespaces: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// nsPids lists the processes, other than this one, whose network namespace is the named one.
func nsPids(name string) ([]int, error) {
	var ns unix.Stat_t
	if err := unix.Stat(filepath.Join(netnsDir, name), &ns); err != nil {
		return nil, fmt.Errorf("looking up network namespace %s: %w", name, err)
	}
	return pidsInNetns(ns.Dev, ns.Ino)
}

// pidsInNetns lists the processes, other than this one, in the network namespace of the nsfs inode dev/ino.
func pidsInNetns(dev uint64, ino uint64) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) == nil && st.Dev == dev && st.Ino == ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetns kills every process in the named namespace with SIGKILL and waits up to wait for them to go.
func killNetns(name string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pids, err := nsPids(name)
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in network namespace %s survive SIGKILL", pids, name)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // the kernel tears killed processes down asynchronously
	}
}

// staleLogs matches the default log directories of labs with a default prefix, and captures the pid.
var staleLogs = regexp.MustCompile(`^herald-lab-hl([0-9]+)(x[0-9]+)?-`)

// staleTemp matches the temporary directories of a control plane (internal/controlplane) and of the e2e
// tests' build, named after their process, and captures the pid.
var staleTemp = regexp.MustCompile(`^herald-(?:controlplane|e2e-bin)-([0-9]+)-`)

// CleanStale removes what a lab with a default name (hl<pid>) left behind when its process died without closing
// it: its namespaces, after killing the processes still in them, and its default log directory. It also removes
// the temporary directories of control planes and e2e builds whose process is gone (an interrupted test run).
// New calls it first.
func CleanStale() error {
	names, err := listNetns()
	if err != nil {
		return err
	}
	var errs []error
	if dirs, err := os.ReadDir(os.TempDir()); err == nil {
		for _, d := range dirs {
			if m := staleLogs.FindStringSubmatch(d.Name()); m != nil && d.IsDir() && stale(m[1], m[2]) {
				errs = append(errs, os.RemoveAll(filepath.Join(os.TempDir(), d.Name())))
			}
			if m := staleTemp.FindStringSubmatch(d.Name()); m != nil && d.IsDir() && gone(m[1]) {
				errs = append(errs, os.RemoveAll(filepath.Join(os.TempDir(), d.Name())))
			}
		}
	}
	for _, name := range names {
		m := stalePrefix.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		if !stale(m[1], m[2]) {
			continue
		}
		if err := killNetns(name, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, delNetns(name))
	}
	return errors.Join(errs...)
}

// stale tells whether the lab of default prefix hl<pid><suffix> is gone: its process is, or it is this process's
// pid (an earlier process's, reused) and no lab of this process has the prefix.
func stale(pid, suffix string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	if n == os.Getpid() {
		prefixesMu.Lock()
		defer prefixesMu.Unlock()
		return !prefixes["hl"+pid+suffix]
	}
	return errors.Is(syscall.Kill(n, 0), syscall.ESRCH)
}

// gone tells whether process pid has ended (and is not this one).
func gone(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 || n == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(n, 0), syscall.ESRCH)
}

// inNetns runs fn on a locked OS thread switched into ns. Sockets fn opens stay in ns. The thread is discarded
// afterwards, so that nothing else runs in ns by accident; the main thread, which the Go runtime cannot discard,
// is switched back to back instead.
func inNetns(ns, back netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the goroutine's end terminates the thread.
		if unix.Gettid() == unix.Getpid() {
			defer func() {
				if err := netns.Set(back); err == nil {
					runtime.UnlockOSThread()
				}
			}()
		}
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// dialIn opens a connection from inside ns.
func dialIn(ctx context.Context, ns, back netns.NsHandle, network, address string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, back, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// writeSysctls sets sysctls (paths under /proc/sys) inside ns.
func writeSysctls(ns, back netns.NsHandle, values map[string]string) error {
	return inNetns(ns, back, func() error { return setSysctls(values) })
}

// setSysctls sets sysctls (paths under /proc/sys) in the calling thread's network namespace.
func setSysctls(values map[string]string) error {
	for path, v := range values {
		if err := os.WriteFile(filepath.Join("/proc/sys", path), []byte(v), 0o644); err != nil {
			return fmt.Errorf("setting sysctl %s: %w", path, err)
		}
	}
	return nil
}
