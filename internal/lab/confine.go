package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Confinement is what a container runtime would restrict a component to, as config/ ships it: the user it runs
// as, the only capabilities it keeps, and a read-only root filesystem.
type Confinement struct {
	// UID is the user (and group) id the process runs as.
	UID int
	// Caps are the capabilities kept (bounding, permitted and effective set; ambient too for a non-root UID);
	// every other one is dropped.
	Caps []uintptr
	// ReadOnly remounts every filesystem read-only in a mount namespace of the process's own.
	ReadOnly bool
}

// SpeakerUID is the user the lab runs the speaker as: the image's. The image runs as root (uid 0) with every
// capability dropped but NET_RAW and NET_ADMIN (config/speaker/daemonset.yaml's securityContext). This is the one
// place to change should the image move to a numeric non-root user: the lab then raises the two capabilities as
// ambient ones, as a runtime does for a non-root container that adds capabilities.
const SpeakerUID = 0

// SpeakerConfinement is config/speaker/daemonset.yaml's securityContext: drop ALL, add NET_RAW (packet sockets)
// and NET_ADMIN (multicast membership, receive buffers over the limit), a read-only root filesystem, no
// privilege escalation.
var SpeakerConfinement = Confinement{UID: SpeakerUID, Caps: []uintptr{unix.CAP_NET_RAW, unix.CAP_NET_ADMIN},
	ReadOnly: true}

// ControllerConfinement is config/manager/controller.yaml's: drop ALL, a read-only root filesystem. The
// Deployment runs it as a non-root user; the lab keeps uid 0, without a single capability, so that it can
// read the kubeconfig and binary the lab keeps in directories only root may enter.
var ControllerConfinement = Confinement{UID: 0, ReadOnly: true}

// EnvConfine carries a Confinement to the confine child: "uid=N caps=N,N ro=true".
const EnvConfine = "HERALD_LAB_CONFINE"

func (c Confinement) env() string {
	caps := make([]string, len(c.Caps))
	for i, cp := range c.Caps {
		caps[i] = strconv.FormatUint(uint64(cp), 10)
	}
	return fmt.Sprintf("uid=%d caps=%s ro=%t", c.UID, strings.Join(caps, ","), c.ReadOnly)
}

func parseConfinement(s string) (Confinement, error) {
	var c Confinement
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "uid":
			c.UID, err = strconv.Atoi(v)
		case "caps":
			for _, n := range strings.Split(v, ",") {
				if n == "" {
					continue
				}
				var cp uint64
				if cp, err = strconv.ParseUint(n, 10, 8); err != nil {
					break
				}
				c.Caps = append(c.Caps, uintptr(cp))
			}
		case "ro":
			c.ReadOnly, err = strconv.ParseBool(v)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			return c, fmt.Errorf("%s %q: %w", EnvConfine, f, err)
		}
	}
	return c, nil
}

// StartConfined is Start for a process confined as c: the lab starts its own executable as the confine child,
// which restricts itself and then executes argv in its place (so Pid is argv's).
func (l *Lab) StartConfined(h *Host, name string, env []string, c Confinement, argv ...string) (*Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable to confine %s: %w", name, err)
	}
	env = append(append([]string(nil), env...), EnvChild+"=confine", EnvConfine+"="+c.env())
	return l.start(h, name, env, false, append([]string{exe}, argv...)...)
}

// confineAndExec restricts this process as the environment's Confinement says and executes argv. It returns
// only on error. Credentials, capabilities and mount namespaces belong to a thread: everything happens on one
// locked thread, which then executes argv, so the new program starts with that thread's restrictions.
func confineAndExec(argv []string) error {
	c, err := parseConfinement(os.Getenv(EnvConfine))
	if err != nil {
		return err
	}
	_ = os.Unsetenv(EnvConfine)
	if len(argv) == 0 {
		return errors.New("confine: no command")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	runtime.LockOSThread() // never unlocked: the thread becomes argv or the process exits
	if err := confine(c); err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

func confine(c Confinement) error {
	if c.ReadOnly {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unsharing the mount namespace: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("making mounts private: %w", err)
		}
		if err := unix.MountSetattr(unix.AT_FDCWD, "/", unix.AT_RECURSIVE,
			&unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("making every mount read-only: %w", err)
		}
	}
	var keep [2]uint32
	for _, cp := range c.Caps {
		keep[cp/32] |= 1 << (cp % 32)
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	for cp := uintptr(0); cp <= last; cp++ {
		if keep[cp/32]&(1<<(cp%32)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, cp, 0, 0, 0); err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", cp, err)
		}
	}
	if c.UID != 0 {
		// Keep the permitted set across the change of user; the effective set is emptied and set again below.
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("keeping capabilities: %w", err)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			return fmt.Errorf("dropping supplementary groups: %w", e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(c.UID), uintptr(c.UID), uintptr(c.UID)); e != 0 {
			return fmt.Errorf("setting group %d: %w", c.UID, e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(c.UID), uintptr(c.UID), uintptr(c.UID)); e != 0 {
			return fmt.Errorf("setting user %d: %w", c.UID, e)
		}
	}
	// uid 0 gets its permitted set from the bounding set at exec; a non-root user keeps only ambient
	// capabilities, which must be inheritable too. Root's inheritable set stays empty, as runtimes leave it.
	data := [2]unix.CapUserData{}
	for i := range data {
		data[i].Effective, data[i].Permitted = keep[i], keep[i]
		if c.UID != 0 {
			data[i].Inheritable = keep[i]
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	if c.UID != 0 {
		for _, cp := range c.Caps {
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, cp, 0, 0); err != nil {
				return fmt.Errorf("raising ambient capability %d: %w", cp, err)
			}
		}
	}
	// allowPrivilegeEscalation: false.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return nil
}

// lastCap is the highest capability this kernel knows.
func lastCap() (uintptr, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		return 0, fmt.Errorf("/proc/sys/kernel/cap_last_cap: %w", err)
	}
	return uintptr(n), nil
}
