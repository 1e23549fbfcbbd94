package kubenode

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupBase is where the cgroup v1 hierarchies are mounted.
var cgroupBase = "/sys/fs/cgroup"

// kubeletSysctls are the host sysctls a kubelet sets at start (its kernel tunables, with protectKernelDefaults
// off); Start records them and Close restores them.
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// Files in a cluster's state dir: the pid of the process that owns it, and the sysctls found before it started.
const (
	ownerFile  = "owner"
	sysctlFile = "sysctls"
)

// Host paths the CRI and the kubelet write to whatever their configuration says: libcni's result cache, the
// containerd shims' sockets, the kubelet's container log links. cleanup removes the entries of the lab's nodes
// and the directories when they are left empty.
var (
	cniResults    = "/var/lib/cni/results"
	shimSockets   = "/run/containerd/s"
	containerLogs = "/var/log/containers"
)

func readSysctls(keys []string) (map[string]string, error) {
	m := map[string]string{}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return nil, fmt.Errorf("kubenode: reading sysctl %s: %w", k, err)
		}
		m[k] = strings.TrimSpace(string(b))
	}
	return m, nil
}

func writeSysctls(m map[string]string) error {
	var errs []error
	for k, v := range m {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("kubenode: restoring sysctl %s to %s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}

// hierarchies lists the mounted cgroup hierarchies' directories: the v1 ones, and the v2 one a hybrid layout
// mounts beside them (/sys/fs/cgroup/unified), where runc makes the containers' groups too.
func hierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var dirs []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		fields := strings.Fields(s.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") &&
				strings.HasPrefix(fields[4], cgroupBase+"/") {
				dirs = append(dirs, fields[4])
			}
		}
	}
	if len(dirs) == 0 {
		return nil, errors.New("kubenode: no cgroup hierarchy is mounted below " + cgroupBase)
	}
	return dirs, s.Err()
}

// makeCgroup makes the cgroup path (and its parents) in every hierarchy; in cpuset, each level gets its
// parent's CPUs and memory nodes, without which no task may join it.
func makeCgroup(path string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := h
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("kubenode: making cgroup %s: %w", dir, err)
			}
			if filepath.Base(h) != "cpuset" {
				continue
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(parent, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
				}
				if err != nil {
					return fmt.Errorf("kubenode: setting %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

// addToCgroup moves pid into path in every hierarchy.
func addToCgroup(path string, pid int) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if err := os.WriteFile(filepath.Join(h, path, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("kubenode: moving %d into %s%s: %w", pid, h, path, err)
		}
	}
	return nil
}

// cgroupPids lists the processes in the cgroup path or below it, in any hierarchy.
func cgroupPids(path string) []int {
	hs, _ := hierarchies()
	seen := map[int]bool{}
	var pids []int
	for _, h := range hs {
		_ = filepath.WalkDir(filepath.Join(h, path), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// signalCgroup sends sig to every process in the cgroup path or below it.
func signalCgroup(path string, sig syscall.Signal) error {
	for _, pid := range cgroupPids(path) {
		if pid == os.Getpid() {
			return fmt.Errorf("kubenode: this process is in cgroup %s", path)
		}
		_ = syscall.Kill(pid, sig)
	}
	return nil
}

// waitCgroupEmpty kills what is in the cgroup path or below it until nothing is, or wait passes.
func waitCgroupEmpty(path string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pids := cgroupPids(path)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubenode: processes %v in cgroup %s survive SIGKILL", pids, path)
		}
		if err := signalCgroup(path, syscall.SIGKILL); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeCgroup removes path and every cgroup below it, deepest first, in every hierarchy.
func removeCgroup(path string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, path), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for range 50 { // a task that just exited keeps its group busy for a moment
				if err = os.Remove(dirs[i]); err == nil || errors.Is(err, fs.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("kubenode: removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// nodeCgroups lists the cgroups of the nodes of the cluster named name (name-node1, ...) at the root.
func nodeCgroups(name string) []string {
	hs, _ := hierarchies()
	seen := map[string]bool{}
	var out []string
	for _, h := range hs {
		ents, _ := os.ReadDir(h)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), name+"-") && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, "/"+e.Name())
			}
		}
	}
	return out
}

// unmountUnder unmounts every mount below the directories, deepest first, until none is left.
func unmountUnder(dirs ...string) error {
	for range 10 {
		var mps []string
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		s := bufio.NewScanner(f)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) < 5 {
				continue
			}
			mp := unescapeMount(fields[4])
			for _, d := range dirs {
				if mp == d || strings.HasPrefix(mp, d+"/") {
					mps = append(mps, mp)
				}
			}
		}
		f.Close()
		if len(mps) == 0 {
			return nil
		}
		sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
		for _, mp := range mps {
			_ = unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	return fmt.Errorf("kubenode: mounts under %v survive unmounting", dirs)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cleanup undoes what the nodes of the cluster named name, with directories state and data, did to the machine:
// it kills every process in their cgroups (containerd, its shims, the containers, the kubelet and kube-proxy),
// unmounts what is mounted under their directories (container root filesystems, sandboxes' network namespaces and
// shared memory, the kubelet's volumes), removes their cgroups, libcni's cached results of their network, the
// shims' stale sockets and the kubelet's container log links.
func cleanup(name, state, data string) error {
	var errs []error
	sandboxes := sandboxIDs(state)
	cgs := nodeCgroups(name)
	for _, cg := range cgs { // a frozen group (PowerOff interrupted) does not die
		_ = os.WriteFile(filepath.Join(cgroupBase, "freezer", cg, "freezer.state"), []byte("THAWED"), 0o644)
	}
	for _, cg := range cgs {
		errs = append(errs, waitCgroupEmpty(cg, 10*time.Second))
	}
	errs = append(errs, unmountUnder(state, data))
	for _, cg := range cgs {
		errs = append(errs, removeCgroup(cg))
	}
	// libcni names a result <network>-<sandbox id>-<interface>: the pod network's (named after the cluster) and
	// the loopback's (cni-loopback).
	if ents, err := os.ReadDir(cniResults); err == nil {
		for _, e := range ents {
			ours := strings.HasPrefix(e.Name(), name+"-")
			for _, id := range sandboxes {
				ours = ours || strings.Contains(e.Name(), "-"+id+"-")
			}
			if ours {
				errs = append(errs, os.Remove(filepath.Join(cniResults, e.Name())))
			}
		}
	}
	if ents, err := os.ReadDir(containerLogs); err == nil {
		for _, e := range ents {
			p := filepath.Join(containerLogs, e.Name())
			if dst, err := os.Readlink(p); err == nil && strings.HasPrefix(dst, data+"/") {
				errs = append(errs, os.Remove(p))
			}
		}
	}
	// A shim killed with its containers leaves its socket; one nobody listens on is garbage, whoever left it.
	if ents, err := os.ReadDir(shimSockets); err == nil {
		for _, e := range ents {
			p := filepath.Join(shimSockets, e.Name())
			if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
				c.Close()
			} else if errors.Is(err, syscall.ECONNREFUSED) {
				errs = append(errs, os.Remove(p))
			}
		}
	}
	removeEmpty(shimSockets, filepath.Dir(shimSockets), cniResults, filepath.Dir(cniResults), containerLogs)
	return errors.Join(errs...)
}

// sandboxIDs lists the ids of the pod sandboxes the containerds under state made.
func sandboxIDs(state string) []string {
	dirs, _ := filepath.Glob(filepath.Join(state, "*", "containerd", "io.containerd.grpc.v1.cri", "sandboxes", "*"))
	ids := make([]string, 0, len(dirs))
	for _, d := range dirs {
		ids = append(ids, filepath.Base(d))
	}
	return ids
}

// removeEmpty removes each directory that is empty.
func removeEmpty(dirs ...string) {
	for _, d := range dirs {
		_ = unix.Rmdir(d)
	}
}

// CleanStale undoes what real-node labs whose process died without Close left behind (Start calls it first):
// their processes, mounts, cgroups and files, and the host sysctls their kubelets changed. The lab's own
// namespaces are internal/lab's to remove (lab.CleanStale).
func CleanStale() error {
	ents, err := os.ReadDir(stateBase)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") { // a claim being made (claim)
			continue
		}
		state := filepath.Join(stateBase, e.Name())
		b, err := os.ReadFile(filepath.Join(state, ownerFile))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && pid != os.Getpid() && !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // its owner runs
		}
		if err == nil && pid == os.Getpid() {
			continue // this process's own
		}
		data := filepath.Join(dataBase, e.Name())
		errs = append(errs, cleanup("herald-kubenode-"+e.Name(), state, data))
		if b, err := os.ReadFile(filepath.Join(state, sysctlFile)); err == nil {
			m := map[string]string{}
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					m[k] = v
				}
			}
			errs = append(errs, writeSysctls(m))
		}
		errs = append(errs, os.RemoveAll(state), os.RemoveAll(data))
	}
	removeEmpty(stateBase, dataBase)
	return errors.Join(errs...)
}
