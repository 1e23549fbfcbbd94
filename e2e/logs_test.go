package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// gossipRules is an nftables table, named table, that drops memberlist's traffic (UDP and TCP port 7946) of a
// node: from and to every peer when peers is empty, else only from and to those addresses, and with oneWay only
// what comes in (the node hears nothing from them; they still hear it). ARP and everything else flows.
func gossipRules(table string, peers []netip.Addr, oneWay bool) string {
	match := func(dir string) string {
		if len(peers) == 0 {
			return ""
		}
		var v4, v6 []string
		for _, p := range peers {
			if p.Is4() {
				v4 = append(v4, p.String())
			} else {
				v6 = append(v6, p.String())
			}
		}
		// One family per rule set: a node's gossip is bound to its IPv4 address.
		if len(v6) > 0 {
			return "ip6 " + dir + " { " + strings.Join(v6, ", ") + " } "
		}
		return "ip " + dir + " { " + strings.Join(v4, ", ") + " } "
	}
	drops := func(dir string) string {
		m := match(dir)
		return m + "udp dport 7946 drop; " + m + "tcp dport 7946 drop; " + m + "udp sport 7946 drop; " + m + "tcp sport 7946 drop;"
	}
	rules := "table inet " + table + " {\n chain in { type filter hook input priority 0; " + drops("saddr") + " }\n"
	if !oneWay {
		rules += " chain out { type filter hook output priority 0; " + drops("daddr") + " }\n"
	}
	return rules + "}\n"
}

// partitionGossip cuts a node's gossip off and returns the function that heals it, which may be called more than
// once.
func (c *cluster) partitionGossip(node string) (heal func() error, err error) {
	return c.cutGossip(node, "herald_chaos", nil, false)
}

// cutGossip loads gossipRules(table, peers, oneWay) on a node and returns the function that removes them, which
// may be called more than once.
func (c *cluster) cutGossip(node, table string, peers []netip.Addr, oneWay bool) (heal func() error, err error) {
	if out, err := c.hosts[node].RunInput(c.ctx, gossipRules(table, peers, oneWay), "nft", "-f", "-"); err != nil {
		return nil, fmt.Errorf("partitioning %s: %v: %s", node, err, out)
	}
	healed := false
	return func() error {
		if healed {
			return nil
		}
		healed = true
		return nft(c, node, "delete", "table", "inet", table)
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
