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
				{"level": 0.0, "msg": "Updating address for left or failed node b"},
				{"level": 0.0, "msg": "Refuting", "warning": true},
				{"msg": "Decrypt failed", "error": nil},
			},
		},
		{
			name:      "V(1) keeps debug",
			verbosity: 1,
			want: []map[string]any{
				{"level": 1.0, "msg": "Failed UDP ping"},
				{"level": 0.0, "msg": "Updating address for left or failed node b"},
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
			std.Printf("[INFO] memberlist: Updating address for left or failed node %s", "b")
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

// Lines as memberlist v0.5.4 prints them (state.go, net.go), with the errors a partition (nft drop in the output
// chain: EPERM), a peer that is down (refused, timeout) or a reset connection give.
func TestClassifyTrouble(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		kind troubleKind
		peer string
		ok   bool
	}{
		{"gossip EPERM", "[ERR] memberlist: Failed to send gossip to 198.51.100.12:7946: write udp 198.51.100.11:7946->198.51.100.12:7946: sendto: operation not permitted",
			troubleUnreachable, "198.51.100.12", true},
		{"UDP ping", "[ERR] memberlist: Failed to send UDP ping: write udp 198.51.100.11:7946->198.51.100.13:7946: sendto: operation not permitted",
			troubleUnreachable, "198.51.100.13", true},
		{"compound ping", "[ERR] memberlist: Failed to send UDP compound ping and suspect message to 198.51.100.13:7946: write udp 198.51.100.11:7946->198.51.100.13:7946: sendto: operation not permitted",
			troubleUnreachable, "198.51.100.13", true},
		{"indirect ping", "[ERR] memberlist: Failed to send indirect UDP ping: write udp [2001:db8::1]:7946->[2001:db8::2]:7946: sendto: operation not permitted",
			troubleUnreachable, "2001:db8::2", true},
		{"fallback TCP ping timeout", "[ERR] memberlist: Failed fallback TCP ping: timeout 100ms: read tcp 198.51.100.11:40112->198.51.100.12:7946: i/o timeout",
			troubleUnreachable, "198.51.100.12", true},
		{"fallback TCP ping refused", "[ERR] memberlist: Failed fallback TCP ping: dial tcp 198.51.100.12:7946: connect: connection refused",
			troubleUnreachable, "198.51.100.12", true},
		{"push/pull", "[ERR] memberlist: Push/Pull with node2 failed: dial tcp 198.51.100.12:7946: connect: operation not permitted",
			troubleUnreachable, "node2", true},
		{"stream reset", "[ERR] memberlist: failed to receive: read tcp 198.51.100.11:7946->198.51.100.12:51234: read: connection reset by peer from=198.51.100.12:51234",
			troubleUnreachable, "198.51.100.12", true},
		{"remote state EOF", "[ERR] memberlist: Failed to read remote state: EOF from=198.51.100.12:51234", troubleUnreachable, "198.51.100.12", true},
		{"ack", "[ERR] memberlist: Failed to send ack: write udp 198.51.100.11:7946->198.51.100.12:7946: sendto: operation not permitted from=198.51.100.12:7946",
			troubleUnreachable, "198.51.100.12", true},
		{"no peer named", "[ERR] memberlist: Failed to send UDP ping: i/o timeout", troubleUnreachable, "", true},
		{"suspect", "[INFO] memberlist: Suspect node2 has failed, no acks received", troubleProbeFailed, "node2", true},
		{"marked failed", "[INFO] memberlist: Marking node2 as failed, suspect timeout reached (1 peer confirmations)", troubleDeclaredDead, "node2", true},
		{"refute suspect", "[WARN] memberlist: Refuting a suspect message (from: node3)", troubleSuspected, "node3", true},
		{"refute dead", "[WARN] memberlist: Refuting a dead message (from: node3)", troubleSuspected, "node3", true},
		{"UDP blocked", "[WARN] memberlist: Was able to connect to node2 over TCP but UDP probes failed, network may be misconfigured", troubleUDPBlocked, "node2", true},
		// What an operator must act on stays as it was.
		{"wrong key", "[ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=198.51.100.12:7946", "", "", false},
		{"too big", "[ERR] memberlist: Failed to send gossip to 198.51.100.12:7946: write udp 198.51.100.11:7946->198.51.100.12:7946: sendto: message too long", "", "", false},
		{"encode", "[ERR] memberlist: Failed to encode ack: x", "", "", false},
		{"conflict", "[ERR] memberlist: Conflicting address for node2. Mine: 198.51.100.12:7946 Theirs: 198.51.100.99:7946 Old state: 0", "", "", false},
		{"debug", "[DEBUG] memberlist: Failed UDP ping: node2 (timeout reached)", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, peer, ok := classifyTrouble(parseLogLine(tc.line))
			if diff := cmp.Diff([]any{tc.kind, tc.peer, tc.ok}, []any{kind, peer, ok}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestLogWriterPartition feeds the writer what an isolated node's memberlist prints during a 5-minute partition
// (about 5 failures a second, to two peers) and after it: one warning per kind of trouble and peer, no error and
// so no stack trace, and a new episode, counting the last one's lines, only after troubleQuiet without trouble.
func TestLogWriterPartition(t *testing.T) {
	c, opts := captureLogger(0)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(t0)
	std := log.New(newLogWriter(funcr.NewJSON(c.add, opts), clk), "", 0)
	lines := []string{
		"[ERR] memberlist: Failed to send gossip to 198.51.100.12:7946: write udp 198.51.100.11:7946->198.51.100.12:7946: sendto: operation not permitted",
		"[ERR] memberlist: Failed to send gossip to 198.51.100.13:7946: write udp 198.51.100.11:7946->198.51.100.13:7946: sendto: operation not permitted",
		"[ERR] memberlist: Failed to send UDP ping: write udp 198.51.100.11:7946->198.51.100.12:7946: sendto: operation not permitted",
		"[INFO] memberlist: Suspect node2 has failed, no acks received",
		"[ERR] memberlist: Push/Pull with node3 failed: dial tcp 198.51.100.13:7946: connect: operation not permitted",
	}
	for i := range 5 * 60 * 5 { // 5 lines a second for 5 minutes
		clk.SetTime(t0.Add(time.Duration(i) * 200 * ms))
		std.Print(lines[i%len(lines)])
	}
	std.Print("[INFO] memberlist: Marking node2 as failed, suspect timeout reached (1 peer confirmations)")
	type got struct {
		Msg, Trouble, Peer string
		Warning            bool
		Repeats            float64
	}
	summarize := func(ls []map[string]any) []got {
		var out []got
		for _, l := range ls {
			if _, isErr := l["error"]; isErr {
				t.Errorf("logged an error: %v", l)
			}
			r, _ := l["lastEpisodeRepeats"].(float64)
			w, _ := l["warning"].(bool)
			out = append(out, got{fmt.Sprint(l["msg"]), fmt.Sprint(l["trouble"]), fmt.Sprint(l["peer"]), w, r})
		}
		return out
	}
	want := []got{
		{"cannot reach a gossip peer", "unreachable", "198.51.100.12", true, 0},
		{"cannot reach a gossip peer", "unreachable", "198.51.100.13", true, 0},
		{"a gossip peer did not answer a probe", "probe-failed", "node2", true, 0},
		{"cannot reach a gossip peer", "unreachable", "node3", true, 0},
		{"a gossip peer is declared failed", "declared-dead", "node2", true, 0},
	}
	if diff := cmp.Diff(want, summarize(c.get())); diff != "" {
		t.Fatalf("during the partition (-want +got):\n%s", diff)
	}

	// Healed: a minute without trouble ends every episode; the next failure opens a new one and says how many
	// lines the last one counted (2 of every 5 lines were about 198.51.100.12, one of them logged).
	clk.SetTime(clk.Now().Add(troubleQuiet))
	std.Print(lines[0])
	last := summarize(c.get()[len(want):])
	if diff := cmp.Diff([]got{{"cannot reach a gossip peer", "unreachable", "198.51.100.12", true, 5*60*5*2/5 - 1}}, last); diff != "" {
		t.Errorf("after the partition (-want +got):\n%s", diff)
	}
}
