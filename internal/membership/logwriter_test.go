package membership

import (
	"encoding/json"
	"fmt"
	"log"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		name      string
		line      string
		wantLevel logLevel
		wantMsg   string
	}{
		{"debug", "[DEBUG] memberlist: Failed UDP ping: b (timeout reached)\n", levelDebug, "Failed UDP ping: b (timeout reached)"},
		{"info", "[INFO] memberlist: Suspect b has failed, no acks received", levelInfo, "Suspect b has failed, no acks received"},
		{"warn", "[WARN] memberlist: Refuting a suspect message (from: a)", levelWarn, "Refuting a suspect message (from: a)"},
		{"err", "[ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=127.0.0.1:2", levelError, "Decrypt packet failed: No installed keys could decrypt the message from=127.0.0.1:2"},
		{"err without component", "[ERR] Failed to shutdown transport: x", levelError, "Failed to shutdown transport: x"},
		{"error spelled out", "[ERROR] memberlist: x", levelError, "x"},
		{"trace", "[TRACE] memberlist: x", levelDebug, "x"},
		{"no prefix", "memberlist: something", levelInfo, "something"},
		{"crlf", "[WARN] memberlist: x\r\n", levelWarn, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			level, msg := parseLogLine(tc.line)
			if diff := cmp.Diff(tc.wantLevel, level); diff != "" {
				t.Errorf("level (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantMsg, msg); diff != "" {
				t.Errorf("msg (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		At         time.Duration
		OK         bool
		Suppressed int
	}
	l := newLimiter(3, 2)
	var got []step
	for _, at := range []time.Duration{0, 0, 0, 0, 0, 100 * ms, 500 * ms, 500 * ms, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second} {
		ok, s := l.allow(t0.Add(at))
		got = append(got, step{at, ok, s})
	}
	want := []step{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, // burst
		{0, false, 0}, {0, false, 0}, {100 * ms, false, 0}, // 0.2 tokens
		{500 * ms, true, 3}, // 1 token after 0.5s at 2/s; reports the 3 refused
		{500 * ms, false, 0},
		{10 * time.Second, true, 1}, {10 * time.Second, true, 0}, {10 * time.Second, true, 0}, // refilled to burst, not beyond
		{10 * time.Second, false, 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// captureLogger returns a logger recording JSON lines at the given verbosity.
func captureLogger(verbosity int) (*logLines, funcr.Options) {
	return &logLines{}, funcr.Options{Verbosity: verbosity}
}

type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (c *logLines) add(obj string) {
	var m map[string]any
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		panic(err)
	}
	delete(m, "logger")
	c.mu.Lock()
	c.lines = append(c.lines, m)
	c.mu.Unlock()
}

func (c *logLines) get() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.lines...)
}

func TestLogWriter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		verbosity int
		want      []map[string]any
	}{
		{
			name: "V(0) drops debug",
			want: []map[string]any{
				{"level": 0.0, "msg": "Suspect b has failed, no acks received"},
				{"level": 0.0, "msg": "Refuting", "warning": true},
				{"msg": "Decrypt failed", "error": nil},
			},
		},
		{
			name:      "V(1) keeps debug",
			verbosity: 1,
			want: []map[string]any{
				{"level": 1.0, "msg": "Failed UDP ping"},
				{"level": 0.0, "msg": "Suspect b has failed, no acks received"},
				{"level": 0.0, "msg": "Refuting", "warning": true},
				{"msg": "Decrypt failed", "error": nil},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, opts := captureLogger(tc.verbosity)
			clk := clocktesting.NewFakePassiveClock(time.Now())
			w := newLogWriter(funcr.NewJSON(c.add, opts), clk)
			std := log.New(w, "", 0)
			std.Printf("[DEBUG] memberlist: Failed UDP ping")
			std.Printf("[INFO] memberlist: Suspect %s has failed, no acks received", "b")
			std.Printf("[WARN] memberlist: Refuting")
			std.Printf("[ERR] memberlist: Decrypt failed")
			if diff := cmp.Diff(tc.want, c.get()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogWriterRateLimit(t *testing.T) {
	c, opts := captureLogger(0)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	std := log.New(newLogWriter(funcr.NewJSON(c.add, opts), clk), "", 0)
	for i := range logBurst + 30 {
		std.Printf("[ERR] memberlist: Decrypt packet failed %d", i)
	}
	if got := len(c.get()); got != logBurst {
		t.Fatalf("logged %d lines in a burst of %d, want %d", got, logBurst+30, logBurst)
	}
	clk.SetTime(clk.Now().Add(time.Second))
	std.Printf("[ERR] memberlist: later")
	lines := c.get()
	want := map[string]any{"msg": "later", "error": nil, "suppressedLines": 30.0}
	if diff := cmp.Diff(want, lines[len(lines)-1]); diff != "" {
		t.Errorf("line after the pause (-want +got):\n%s", diff)
	}
	if got := fmt.Sprint(lines[0]["msg"]); got != "Decrypt packet failed 0" {
		t.Errorf("first line = %q", got)
	}
}
