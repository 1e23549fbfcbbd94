package charts_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/heraldlb/herald/internal/netnstest"
)

// The speaker needs NET_RAW and NET_ADMIN. Kubernetes puts a container's `capabilities.add` into the bounding set
// (and, for uid 0, the permitted and effective sets) but sets no ambient capabilities, so a process that a non-root
// uid execs gets none of them unless the binary carries file capabilities, and allowPrivilegeEscalation: false
// (no_new_privs) stops file capabilities from granting anything. TestSpeakerCapabilities replays what the
// container runtime does before it execs the entrypoint (drop the bounding set to the container's capabilities,
// set no_new_privs, change uid) in a child process, for the speaker's securityContext as the chart renders it and
// for the alternatives, and records whether the exec'd process can open a packet socket. docs/install.md ("The
// image's user") quotes the table.

const capEnv = "HERALD_CAPTEST"

func TestMain(m *testing.M) {
	switch os.Getenv(capEnv) {
	case "launch":
		os.Exit(launch())
	case "probe":
		os.Exit(probe())
	}
	os.Exit(m.Run())
}

var capNumbers = map[string]int{"NET_ADMIN": unix.CAP_NET_ADMIN, "NET_RAW": unix.CAP_NET_RAW}

// launch plays the container runtime: HERALD_CAPTEST_CAPS (the bounding set, comma-separated), _NNP (set
// no_new_privs), _UID, then exec _EXEC in probe mode.
func launch() int {
	runtime.LockOSThread() // the bounding set and no_new_privs are per thread: exec from this one
	keep := map[int]bool{}
	for c := range strings.SplitSeq(os.Getenv(capEnv+"_CAPS"), ",") {
		if c != "" {
			keep[capNumbers[c]] = true
		}
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if !keep[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				fmt.Printf("drop %d: %v\n", c, err)
				return 10
			}
		}
	}
	if os.Getenv(capEnv+"_NNP") == "1" {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Printf("no_new_privs: %v\n", err)
			return 10
		}
	}
	uid, _ := strconv.Atoi(os.Getenv(capEnv + "_UID"))
	if uid != 0 {
		if err := syscall.Setresgid(uid, uid, uid); err != nil {
			fmt.Printf("setgid: %v\n", err)
			return 10
		}
		if err := syscall.Setgroups(nil); err != nil {
			fmt.Printf("setgroups: %v\n", err)
			return 10
		}
		if err := syscall.Setresuid(uid, uid, uid); err != nil {
			fmt.Printf("setuid: %v\n", err)
			return 10
		}
	}
	exe := os.Getenv(capEnv + "_EXEC")
	env := []string{capEnv + "=probe"}
	err := syscall.Exec(exe, []string{exe}, env)
	fmt.Printf("exec: %v\n", err) // only reached when exec fails
	if errors.Is(err, syscall.EPERM) {
		return 11
	}
	return 10
}

// probe opens an AF_PACKET socket, what the speaker does first, and prints its effective capabilities.
func probe() int {
	status, _ := os.ReadFile("/proc/self/status")
	var eff string
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff = strings.TrimSpace(v)
		}
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		fmt.Printf("CapEff %s packet socket: %v\n", eff, err)
		return 1
	}
	unix.Close(fd)
	fmt.Printf("CapEff %s packet socket: ok\n", eff)
	return 0
}

// fileCaps is a security.capability xattr (VFS_CAP_REVISION_2) granting NET_RAW and NET_ADMIN, permitted and
// effective: `setcap cap_net_raw,cap_net_admin+ep`.
func fileCaps() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_RAW|1<<unix.CAP_NET_ADMIN)
	return b
}

// speakerSecurityContext returns the speaker container's runAsUser, capabilities.add (after drop ALL) and
// allowPrivilegeEscalation from the chart's default rendering.
func speakerSecurityContext(t *testing.T) (uid int, caps []string, escalate bool) {
	t.Helper()
	for _, o := range decode(t, render(t, "herald-system")) {
		if o.GetKind() != "DaemonSet" || o.GetName() != "herald-speaker" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		sc := cs[0].(map[string]any)["securityContext"].(map[string]any)
		u, ok := sc["runAsUser"].(int64)
		if !ok {
			t.Fatal("the speaker sets no runAsUser: it would run as the image's user, 65532")
		}
		drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
		if !slices.Equal(drop, []string{"ALL"}) {
			t.Fatalf("the speaker drops %v, want [ALL]", drop)
		}
		caps, _, _ = unstructured.NestedStringSlice(sc, "capabilities", "add")
		e, _ := sc["allowPrivilegeEscalation"].(bool)
		return int(u), caps, e
	}
	t.Fatal("no DaemonSet herald-speaker")
	return 0, nil, false
}

func TestSpeakerCapabilities(t *testing.T) {
	netnstest.NeedRoot(t)
	uid, caps, escalate := speakerSecurityContext(t)
	if got := slices.Sorted(slices.Values(caps)); !slices.Equal(got, []string{"NET_ADMIN", "NET_RAW"}) {
		t.Fatalf("the speaker adds %v, want NET_ADMIN and NET_RAW only", caps)
	}
	if escalate {
		t.Error("the speaker allows privilege escalation")
	}

	// Copies of this test binary, one plain and one with file capabilities, where uid 65532 can exec them.
	dir, err := os.MkdirTemp("", "herald-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	plain, withCaps := filepath.Join(dir, "plain"), filepath.Join(dir, "filecaps")
	for _, p := range []string{plain, withCaps} {
		copyFile(t, self, p)
	}
	if err := unix.Setxattr(withCaps, "security.capability", fileCaps(), 0); err != nil {
		t.Fatalf("setting file capabilities: %v", err)
	}

	const image = 65532 // the image's user
	speaker := strings.Join(caps, ",")
	for _, c := range []struct {
		name     string
		exe      string
		uid      int
		caps     string
		nnp      bool
		wantCode int // 0 packet socket opened, 1 refused, 11 exec refused (EPERM)
		wantEff  string
	}{
		{"the chart's speaker: uid 0, NET_RAW and NET_ADMIN, no escalation", plain, uid, speaker, !escalate, 0, "0000000000003000"},
		{"the image's user with the same capabilities", plain, image, speaker, true, 1, "0000000000000000"},
		{"the image's user, file capabilities, no escalation (no_new_privs)", withCaps, image, speaker, true, 1, "0000000000000000"},
		{"the image's user, file capabilities, allowPrivilegeEscalation: true", withCaps, image, speaker, false, 0, "0000000000003000"},
		{"file capabilities under the controller's drop ALL: the binary does not start", withCaps, image, "", true, 11, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(self, "-test.run=^$")
			cmd.Env = append(os.Environ(), capEnv+"=launch", capEnv+"_CAPS="+c.caps, capEnv+"_UID="+strconv.Itoa(c.uid),
				capEnv+"_EXEC="+c.exe, capEnv+"_NNP="+map[bool]string{true: "1", false: "0"}[c.nnp])
			out, _ := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			t.Logf("exit %d: %s", code, strings.TrimSpace(string(out)))
			if code != c.wantCode {
				t.Errorf("exit code %d, want %d", code, c.wantCode)
			}
			if c.wantEff != "" && !strings.Contains(string(out), "CapEff "+c.wantEff+" ") {
				t.Errorf("effective capabilities: %s, want %s", out, c.wantEff)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
