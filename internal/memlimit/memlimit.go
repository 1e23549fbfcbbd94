// Package memlimit gives the Go runtime a soft memory limit (runtime/debug.SetMemoryLimit, what GOMEMLIMIT sets)
// from the memory limit of the cgroup the process runs in, cgroup v1's memory.limit_in_bytes or v2's memory.max:
// the garbage collector then works harder as the heap nears the container's limit instead of letting the kernel's
// OOM killer end the process.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction of the cgroup's limit given to the runtime. The rest is headroom for what the limit counts and the
// runtime does not: the page cache of files the process reads, memory the kernel holds for its sockets.
const Fraction = 0.9

// unlimited is the smallest value read as "no limit": cgroup v1 reports no limit as a page-rounded maximum
// (9223372036854771712).
const unlimited = 1 << 62

// Limit returns the memory limit, in bytes, of the cgroup that cgroupFile (a /proc/PID/cgroup) names, read
// under root (where cgroupfs is mounted, /sys/fs/cgroup); ok is false when there is none. Inside a container
// the cgroup namespace makes the named path "/", and the container's own cgroup is mounted at the root: both
// places are tried.
func Limit(root, cgroupFile string) (limit int64, ok bool, err error) {
	f, err := os.Open(cgroupFile)
	if err != nil {
		return 0, false, fmt.Errorf("memlimit: %w", err)
	}
	defer f.Close()
	var candidates []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			candidates = append(candidates, filepath.Join(root, parts[2], "memory.max"), filepath.Join(root, "memory.max"))
		case hasController(parts[1], "memory"): // cgroup v1
			candidates = append(candidates, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"),
				filepath.Join(root, "memory", "memory.limit_in_bytes"))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("memlimit: reading %s: %w", cgroupFile, err)
	}
	for _, c := range candidates {
		b, err := os.ReadFile(c)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("memlimit: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false, nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("memlimit: %s holds %q: %w", c, s, err)
		}
		if v <= 0 || v >= unlimited {
			return 0, false, nil
		}
		return v, true, nil
	}
	return 0, false, nil
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// Set gives the runtime Fraction of this process's cgroup memory limit as its soft limit, unless GOMEMLIMIT
// is set (the operator's choice wins) or there is no limit. It returns the limit it set, 0 when it set none, and
// why.
func Set() (int64, string, error) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return 0, "GOMEMLIMIT=" + v + " is set", nil
	}
	limit, ok, err := Limit("/sys/fs/cgroup", "/proc/self/cgroup")
	if err != nil || !ok {
		return 0, "no cgroup memory limit", err
	}
	soft := int64(float64(limit) * Fraction)
	debug.SetMemoryLimit(soft)
	return soft, fmt.Sprintf("%.0f%% of the cgroup's memory limit of %d bytes", Fraction*100, limit), nil
}
