package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// gossipPartitionRules drop memberlist's traffic (UDP and TCP port 7946) in and out of a node; ARP and everything
// else flows.
const gossipPartitionRules = "table inet herald_chaos {\n" +
	" chain in { type filter hook input priority 0; udp dport 7946 drop; tcp dport 7946 drop; udp sport 7946 drop; tcp sport 7946 drop; }\n" +
	" chain out { type filter hook output priority 0; udp dport 7946 drop; tcp dport 7946 drop; udp sport 7946 drop; tcp sport 7946 drop; }\n}\n"

// partitionGossip cuts a node's gossip off (gossipPartitionRules) and returns the function that heals it, which
// may be called more than once.
func (c *cluster) partitionGossip(node string) (heal func() error, err error) {
	if out, err := c.hosts[node].RunInput(c.ctx, gossipPartitionRules, "nft", "-f", "-"); err != nil {
		return nil, fmt.Errorf("partitioning %s: %v: %s", node, err, out)
	}
	healed := false
	return func() error {
		if healed {
			return nil
		}
		healed = true
		return nft(c, node, "delete", "table", "inet", "herald_chaos")
	}, nil
}

// logCount counts a speaker's log lines (zap JSON, one object a line) over a window.
type logCount struct {
	lines, errors, warnings, stacks int
	msgs                            map[string]int // "level msg" -> lines
}

// logOffsets returns the current size of each speaker's log, where a later countLogs starts.
func (c *cluster) logOffsets(tb testing.TB) map[string]int64 {
	out := map[string]int64{}
	for n, p := range c.speaker {
		fi, err := os.Stat(p.Log())
		if err != nil {
			tb.Fatal(err)
		}
		out[n] = fi.Size()
	}
	return out
}

// countLogs counts each speaker's log lines written since from.
func (c *cluster) countLogs(tb testing.TB, from map[string]int64) map[string]*logCount {
	out := map[string]*logCount{}
	for n, p := range c.speaker {
		f, err := os.Open(p.Log())
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := f.Seek(from[n], 0); err != nil {
			tb.Fatal(err)
		}
		lc := &logCount{msgs: map[string]int{}}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Level, Msg, Stacktrace string
				Warning                bool
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue // the lab's own "=== lab:" lines
			}
			lc.lines++
			switch {
			case l.Level == "error":
				lc.errors++
			case l.Warning:
				lc.warnings++
			}
			if l.Stacktrace != "" {
				lc.stacks++
			}
			lc.msgs[l.Level+" "+l.Msg]++
		}
		f.Close()
		out[n] = lc
	}
	return out
}

// reportLogs logs one line per speaker with its rate and the messages it repeated most.
func reportLogs(tb testing.TB, phase string, counts map[string]*logCount, d time.Duration, isolated string) {
	for _, n := range slices.Sorted(maps.Keys(counts)) {
		lc := counts[n]
		role := ""
		if n == isolated {
			role = " (isolated)"
		}
		type kv struct {
			k string
			v int
		}
		var top []kv
		for k, v := range lc.msgs {
			top = append(top, kv{k, v})
		}
		sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v || top[i].v == top[j].v && top[i].k < top[j].k })
		var tops []string
		for i := 0; i < len(top) && i < 4; i++ {
			tops = append(tops, fmt.Sprintf("%d× %q", top[i].v, top[i].k))
		}
		perMin := float64(lc.lines) / d.Minutes()
		tb.Logf("logs: phase=%s node=%s%s lines=%d per_minute=%.1f errors=%d warnings=%d stack_traces=%d top=[%s]",
			phase, n, role, lc.lines, perMin, lc.errors, lc.warnings, lc.stacks, strings.Join(tops, "; "))
	}
}

// BenchmarkLogsDuringFaults measures how many lines each speaker of a 3-node lab logs per minute in steady state
// and while one node's gossip is partitioned off, and how many of them are errors and carry stack traces. The
// window is HERALD_LOG_WINDOW (default 60s) per phase.
func BenchmarkLogsDuringFaults(b *testing.B) {
	window := time.Minute
	if d, err := time.ParseDuration(os.Getenv("HERALD_LOG_WINDOW")); err == nil && d > 0 {
		window = d
	}
	c := newCluster(b, 3)
	c.pool("lab", []string{poolV4, poolV6})
	for i := range 3 {
		s, addrs := c.service("logs", fmt.Sprintf("svc%d", i), "lab")
		c.settled(s, addrs[0])
	}
	for b.Loop() {
		from := c.logOffsets(b)
		time.Sleep(window) // the measurement window itself
		reportLogs(b, "steady", c.countLogs(b, from), window, "")

		node := "node1"
		from = c.logOffsets(b)
		heal, err := c.partitionGossip(node)
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(window)
		reportLogs(b, "partition", c.countLogs(b, from), window, node)
		if err := heal(); err != nil {
			b.Fatal(err)
		}
		from = c.logOffsets(b)
		c.waitMembers(len(c.hosts))
		time.Sleep(10 * time.Second) // the settling window after the heal
		reportLogs(b, "healed-10s", c.countLogs(b, from), 10*time.Second, node)
	}
}
