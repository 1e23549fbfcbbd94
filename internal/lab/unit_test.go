package lab

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStalePrefix(t *testing.T) {
	tests := []struct {
		name    string
		ns      string
		wantPid string // "" when not a default lab name
	}{
		{name: "switch", ns: "hl1234-sw", wantPid: "1234"},
		{name: "node", ns: "hl1234-n12", wantPid: "1234"},
		{name: "second lab of a process", ns: "hl1234x2-client", wantPid: "1234"},
		{name: "named lab", ns: "demo-n1"},
		{name: "test namespace", ns: "htest-99-a"},
		{name: "no role", ns: "hl1234"},
		{name: "letters after pid", ns: "hl12ab-n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if m := stalePrefix.FindStringSubmatch(tt.ns); m != nil {
				got = m[1]
			}
			if diff := cmp.Diff(tt.wantPid, got); diff != "" {
				t.Errorf("pid (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "default", in: "hl4242", want: true},
		{name: "with dash", in: "demo-1", want: true},
		{name: "upper case", in: "Demo"},
		{name: "slash", in: "a/b"},
		{name: "leading dash", in: "-a"},
		{name: "empty", in: ""},
		{name: "33 characters", in: "abcdefghijabcdefghijabcdefghijabc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, validName.MatchString(tt.in)); diff != "" {
				t.Errorf("valid (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunWeb runs the web role in this process on the loopback interface, which needs no root.
func TestRunWeb(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ports := make(chan int, 1)
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = runWeb(ctx, "127.0.0.1:0", "node1", func(p int) { ports <- p }) })
	defer func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("runWeb: %v", runErr)
		}
	}()
	var port int
	select {
	case port = <-ports:
	case <-time.After(10 * time.Second):
		t.Fatal("the web role did not listen")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	tests := []struct {
		name    string
		network string
		send    string
		want    string
	}{
		{name: "TCP", network: "tcp", want: "node1\n"},
		{name: "UDP", network: "udp", send: "ping", want: "node1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout(tt.network, addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if tt.send != "" {
				if _, err := c.Write([]byte(tt.send)); err != nil {
					t.Fatal(err)
				}
			}
			// A connected UDP socket takes only datagrams from the address it sent to: an answer read came from it.
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(buf[:n])); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStale(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name        string
		pid, suffix string
		open        string // a prefix open in this process during the test
		want        bool
	}{
		{name: "dead process", pid: strconv.Itoa(dead.Process.Pid), want: true},
		{name: "live process", pid: "1"},
		{name: "this process, no lab open", pid: self, want: true},
		{name: "this process, its lab open", pid: self, open: "hl" + self},
		{name: "this process, another lab open", pid: self, suffix: "x2", open: "hl" + self, want: true},
		{name: "this process, second lab open", pid: self, suffix: "x2", open: "hl" + self + "x2"},
		{name: "not a pid", pid: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.open != "" {
				prefixesMu.Lock()
				prefixes[tt.open] = true
				prefixesMu.Unlock()
				defer func() {
					prefixesMu.Lock()
					delete(prefixes, tt.open)
					prefixesMu.Unlock()
				}()
			}
			if diff := cmp.Diff(tt.want, stale(tt.pid, tt.suffix)); diff != "" {
				t.Errorf("stale(%s, %q) (-want +got):\n%s", tt.pid, tt.suffix, diff)
			}
		})
	}
}
