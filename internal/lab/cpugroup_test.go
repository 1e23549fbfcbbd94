package lab

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/netnstest"
)

// TestCPUGroup throttles a busy loop under a CFS quota of 10 % of a core and checks that the kernel throttled it,
// then that Close stops the loop and removes the group.
func TestCPUGroup(t *testing.T) {
	netnstest.NeedRoot(t)
	g, err := NewCPUGroup(CPULimit{Quota: 10 * time.Millisecond, Period: 100 * time.Millisecond, CPUs: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Hog(1); err != nil {
		t.Fatal(err)
	}
	pid := g.procs[0].Process.Pid
	// A busy loop under 10 ms per 100 ms runs out of quota in every period it runs in: in 0.5 s, about five of
	// them and 90 ms each. Any throttling at all shows the quota is applied; none would mean it is not. On a
	// machine busy enough that the loop hardly runs, that takes longer: wait up to 10 s.
	var periods int
	var total time.Duration
	for deadline := time.Now().Add(10 * time.Second); ; {
		time.Sleep(500 * time.Millisecond)
		if periods, total, err = g.Throttled(); err != nil {
			t.Fatal(err)
		}
		if (periods > 0 && total > 0) || time.Now().After(deadline) {
			break
		}
	}
	if periods == 0 || total == 0 {
		t.Errorf("throttled %d periods, %v in all; want some", periods, total)
	}
	t.Logf("throttled %d periods, %v in all", periods, total)
	dirs := append([]string(nil), g.dirs...)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", d, err)
		}
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("the hog %d still runs", pid)
	}
}
