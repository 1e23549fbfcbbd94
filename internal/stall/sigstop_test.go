//go:build unix

package stall

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary, re-executed, run stallChild instead of
// the tests.
const childEnv = "HERALD_STALL_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(stallChild())
	}
	os.Exit(m.Run())
}

// stallChild runs a Detector on the real clock and a goroutine spinning on
// Fresh. It prints "ready", then, after the parent stopped and continued
// it, one line "stall=<duration> freshAfterResume=<bool>" and exits.
//
// The spinner reads the clock before and after each Fresh. A gap of more
// than 200ms between the previous iteration's second read and this one's
// first means the process was stopped before this Fresh ran: that Fresh is
// the first check after the resume. A gap inside one iteration leaves it
// unknown whether that Fresh ran before or after the stop, so the next
// iteration's, microseconds after the resume, is reported instead.
func stallChild() int {
	d := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)

	first := make(chan bool, 1)
	go func() {
		prev := time.Now()
		stoppedInside := false
		for ctx.Err() == nil {
			before := time.Now()
			fresh := d.Fresh()
			after := time.Now()
			if stoppedInside || before.Sub(prev) > 200*time.Millisecond {
				first <- fresh
				return
			}
			stoppedInside = after.Sub(before) > 200*time.Millisecond
			prev = after
			runtime.Gosched()
		}
	}()
	time.Sleep(100 * time.Millisecond) // a few regular ticks
	if !d.Fresh() {
		fmt.Println("error: not fresh before the stop")
		return 1
	}
	fmt.Println("ready")
	var stall time.Duration
	select {
	case stall = <-d.Stalls():
	case <-time.After(10 * time.Second):
		fmt.Println("error: no stall detected")
		return 1
	}
	var fresh bool
	select {
	case fresh = <-first:
	case <-time.After(10 * time.Second):
		fmt.Println("error: the spinner saw no gap")
		return 1
	}
	fmt.Printf("stall=%v freshAfterResume=%v\n", stall, fresh)
	return 0
}

func TestSIGSTOPIsAStall(t *testing.T) {
	if testing.Short() {
		t.Skip("stops a child process for 400ms")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child exited early")
			}
			if strings.HasPrefix(l, "error") {
				t.Fatalf("child: %s", l)
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("child said nothing for 20s")
		}
		return ""
	}
	if l := next(); l != "ready" {
		t.Fatalf("child said %q, want ready", l)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	stopped := time.Now()
	time.Sleep(400 * time.Millisecond) // the stall itself, not a wait for an outcome
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT: %v", err)
	}
	t.Logf("child stopped for %v", time.Since(stopped))
	l := next()
	var stall time.Duration
	var fresh bool
	var ds string
	if _, err := fmt.Sscanf(l, "stall=%s freshAfterResume=%t", &ds, &fresh); err != nil {
		t.Fatalf("child said %q: %v", l, err)
	}
	if stall, err = time.ParseDuration(ds); err != nil {
		t.Fatalf("child said %q: %v", l, err)
	}
	t.Logf("child: %s", l)
	if stall < 300*time.Millisecond {
		t.Errorf("child reported a stall of %v, want >= 300ms", stall)
	}
	if fresh {
		t.Error("the first Fresh after SIGCONT returned true")
	}
}
