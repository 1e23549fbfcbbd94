package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// cgroupRoot is where the cgroup v1 hierarchies are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// CPULimit is what a CPUGroup imposes, as a container runtime does for a CPU limit (CFS bandwidth) and a cpuset.
type CPULimit struct {
	// Quota is the CPU time the group may use per Period; zero for no limit.
	Quota, Period time.Duration
	// CPUs is the cpuset ("0", "0-1"); empty for the parent's.
	CPUs string
	// Shares is the group's CFS weight (cpu.shares; 1024 is one ordinary task's); zero for the default.
	Shares int
}

// CPUGroup is a cgroup v1 group in the cpu and cpuset hierarchies, made by the lab for processes it wants to
// starve or throttle: a speaker beside a CPU hog, or under a CFS quota. Close moves its processes back to the root
// groups and removes it.
type CPUGroup struct {
	name  string
	dirs  []string // cpu, cpuset
	procs []*exec.Cmd
}

// cgroupSeq numbers the groups of this process.
var cgroupSeq atomic.Int64

// staleGroup matches the groups NewCPUGroup makes; the number is the pid of the process that made them.
var staleGroup = regexp.MustCompile(`^herald-lab-(\d+)-\d+$`)

// NewCPUGroup makes a group with the limit. Groups left by a process that no longer runs (a test killed
// before its cleanup) are removed first. It needs root and cgroup v1.
func NewCPUGroup(lim CPULimit) (*CPUGroup, error) {
	removeStaleGroups()
	g := &CPUGroup{name: fmt.Sprintf("herald-lab-%d-%d", os.Getpid(), cgroupSeq.Add(1))}
	for _, h := range []string{"cpu", "cpuset"} {
		parent := filepath.Join(cgroupRoot, h)
		if _, err := os.Stat(filepath.Join(parent, "tasks")); err != nil {
			g.Close()
			return nil, fmt.Errorf("cgroup v1 hierarchy %s: %w", h, err)
		}
		dir := filepath.Join(parent, g.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			g.Close()
			return nil, fmt.Errorf("making cgroup %s: %w", dir, err)
		}
		g.dirs = append(g.dirs, dir)
	}
	cpu, cpuset := g.dirs[0], g.dirs[1]
	writes := [][2]string{}
	// A new cpuset group has no CPUs and no memory nodes: copy the parent's, then narrow the CPUs.
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join(cgroupRoot, "cpuset", f))
		if err != nil {
			g.Close()
			return nil, err
		}
		writes = append(writes, [2]string{filepath.Join(cpuset, f), strings.TrimSpace(string(b))})
	}
	if lim.CPUs != "" {
		writes = append(writes, [2]string{filepath.Join(cpuset, "cpuset.cpus"), lim.CPUs})
	}
	if lim.Quota > 0 {
		period := lim.Period
		if period <= 0 {
			period = 100 * time.Millisecond
		}
		writes = append(writes,
			[2]string{filepath.Join(cpu, "cpu.cfs_period_us"), strconv.FormatInt(period.Microseconds(), 10)},
			[2]string{filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.FormatInt(lim.Quota.Microseconds(), 10)})
	}
	if lim.Shares > 0 {
		writes = append(writes, [2]string{filepath.Join(cpu, "cpu.shares"), strconv.Itoa(lim.Shares)})
	}
	for _, w := range writes {
		if err := os.WriteFile(w[0], []byte(w[1]), 0o644); err != nil {
			g.Close()
			return nil, fmt.Errorf("setting %s to %s: %w", w[0], w[1], err)
		}
	}
	return g, nil
}

// Add moves a process, with all its threads, into the group.
func (g *CPUGroup) Add(pid int) error {
	for _, dir := range g.dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("moving %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// Hog starts n busy loops inside the group; Close stops them.
func (g *CPUGroup) Hog(n int) error {
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting a CPU hog: %w", err)
		}
		g.procs = append(g.procs, cmd)
		if err := g.Add(cmd.Process.Pid); err != nil {
			return err
		}
	}
	return nil
}

// Throttled reads the group's CFS statistics: periods in which it ran out of quota, and for how long in all.
func (g *CPUGroup) Throttled() (periods int, total time.Duration, err error) {
	b, err := os.ReadFile(filepath.Join(g.dirs[0], "cpu.stat"))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "nr_throttled":
			periods = int(n)
		case "throttled_time":
			total = time.Duration(n)
		}
	}
	return periods, total, nil
}

// Close stops the hogs, moves every remaining process back to the root groups and removes the group. It may be
// called more than once.
func (g *CPUGroup) Close() error {
	for _, cmd := range g.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	g.procs = nil
	var errs []error
	for i := len(g.dirs) - 1; i >= 0; i-- {
		if err := removeGroup(g.dirs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	g.dirs = nil
	return errors.Join(errs...)
}

// removeGroup moves dir's processes to its parent and removes it.
func removeGroup(dir string) error {
	parent := filepath.Dir(dir)
	for attempt := 0; ; attempt++ {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		for _, pid := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(pid), 0o644)
		}
		err = os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if attempt == 50 { // a process exiting meanwhile keeps the group busy for a moment
			return fmt.Errorf("removing cgroup %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeStaleGroups removes the groups of lab processes that no longer run.
func removeStaleGroups() {
	for _, h := range []string{"cpu", "cpuset"} {
		ents, _ := os.ReadDir(filepath.Join(cgroupRoot, h))
		for _, e := range ents {
			m := staleGroup.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			pid, _ := strconv.Atoi(m[1])
			if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
				continue
			}
			_ = removeGroup(filepath.Join(cgroupRoot, h, e.Name()))
		}
	}
}
