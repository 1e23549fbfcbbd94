package demo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/probe"
)

const (
	probeWait     = 300 * time.Millisecond // how long one probe collects answers
	responderWait = 5 * time.Second        // how long an address may take to be answered by its announcer alone
	webPort       = 8080                   // the web servers' port on every node; Service port 80 is DNATed to it
	tcpTimeout    = 3 * time.Second
	watchEvery    = 10 * time.Millisecond  // the failover probes' interval
	baseline      = 200 * time.Millisecond // of answers from the announcer before it is stopped
	afterMove     = 50                     // answers from the new node before a failover's measurement ends
	moveTimeout   = 30 * time.Second       // for another node to answer after the announcer stops
	// afterMoveTimeout bounds the wait for the afterMove answers, from the first one.
	afterMoveTimeout = 10 * time.Second
	stopTimeout      = 10 * time.Second // for a signalled speaker to exit
	verdictOK        = "ok"
	wrongPrefix      = "WRONG:"
)

// verdict judges what the client saw for one address: it is right when exactly one node answered, the
// announcer. responders are node names, or MACs no node has.
func verdict(announcer string, responders []string) string {
	switch {
	case announcer == "":
		return wrongPrefix + "no-announcer"
	case len(responders) == 0:
		return wrongPrefix + "no-answer"
	case len(responders) > 1:
		return wrongPrefix + strconv.Itoa(len(responders)) + "-responders"
	case responders[0] != announcer:
		return wrongPrefix + "not-the-announcer"
	}
	return verdictOK
}

// nodeOf names the node whose lab interface has mac; a MAC no node has is returned as it is.
func (d *demo) nodeOf(mac net.HardwareAddr) string {
	for _, name := range d.names {
		if slices.Equal(d.nodes[name].MAC, mac) {
			return name
		}
	}
	return mac.String()
}

// responders probes addr once from the client and returns the distinct MACs that answered, in order.
func (d *demo) responders(ctx context.Context, addr netip.Addr) ([]net.HardwareAddr, error) {
	p := d.p4
	if addr.Is6() {
		p = d.p6
	}
	replies, err := p.Once(ctx, addr, probeWait)
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(ctx)
		}
		return nil, fmt.Errorf("probing %s from the client: %w", addr, err)
	}
	var macs []net.HardwareAddr
	for _, r := range replies {
		if !slices.ContainsFunc(macs, func(m net.HardwareAddr) bool { return slices.Equal(m, r.MAC) }) {
			macs = append(macs, r.MAC)
		}
	}
	return macs, nil
}

// wire prints, for every address of every Service, the announcer its Announcement names, the interfaces, and who
// answers the client's ARP request or Neighbor Solicitation for it; anything but the announcer alone is a
// problem.
func (d *demo) wire(ctx context.Context, addrs map[string][]string, anns map[string]*heraldv1.Announcement) error {
	d.step("What the client (%s, %s) sees on the wire: who answers its ARP requests and Neighbor Solicitations",
		d.lab.Client.NS, d.lab.Client.MAC)
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    SERVICE\tADDRESS\tANNOUNCER\tINTERFACES\tCLIENT SEES\tRESULT")
	for _, name := range sortedKeys(addrs) {
		an := anns[name]
		for _, s := range addrs[name] {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("Service %s has address %q: %w", name, s, err)
			}
			// A speaker writes its Announcement once it answers; allow the wire a moment all the same.
			var seen []string
			var v string
			deadline := time.Now().Add(responderWait)
			for {
				macs, err := d.responders(ctx, a)
				if err != nil {
					return err
				}
				seen = seen[:0]
				for _, m := range macs {
					seen = append(seen, d.nodeOf(m))
				}
				if v = verdict(an.Status.Node, seen); v == verdictOK || time.Now().After(deadline) {
					break
				}
			}
			if v != verdictOK {
				d.problem("%s %s: announced by %s, the client sees %v", name, a, an.Status.Node, seen)
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", name, a, an.Status.Node,
				strings.Join(an.Status.Interfaces, ","), d.seenText(seen), v)
		}
	}
	return tw.Flush()
}

// seenText writes responders as node(MAC), comma-separated; "-" for none.
func (d *demo) seenText(seen []string) string {
	if len(seen) == 0 {
		return "-"
	}
	parts := make([]string, len(seen))
	for i, s := range seen {
		if h, ok := d.nodes[s]; ok {
			parts[i] = fmt.Sprintf("%s(%s)", s, h.MAC)
		} else {
			parts[i] = "?(" + s + ")"
		}
	}
	return strings.Join(parts, ",")
}

// webIPv4 returns the IPv4 address of Service web.
func webIPv4(addrs map[string][]string) (netip.Addr, error) {
	for _, s := range addrs["web"] {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("Service web has no IPv4 address (it has %v)", addrs["web"])
}

// tcp starts a web server answering its node's name on every node, with a DNAT rule from vip:80 to it (what
// kube-proxy would do), and opens one TCP connection from the client to vip:80: the announcer should answer.
func (d *demo) tcp(ctx context.Context, vip netip.Addr, announcer string) error {
	d.step("One TCP request from the client to web's %s:80 (every node runs a web server answering its name on :%d, "+
		"with a DNAT rule from %s:80, in place of kube-proxy)", vip, webPort, vip)
	for _, name := range d.names {
		h := d.nodes[name]
		if _, err := d.lab.StartWeb(ctx, h, "web-"+name, webPort, name); err != nil {
			return fmt.Errorf("starting the web server on %s: %w", name, err)
		}
		if err := d.lab.DNAT(h, vip, 80, webPort); err != nil {
			return fmt.Errorf("on %s: %w", name, err)
		}
	}
	d.request(ctx, vip, announcer)
	return nil
}

// request fetches vip:80 from the client and prints which node answered; anything but want is a problem.
func (d *demo) request(ctx context.Context, vip netip.Addr, want string) {
	start := time.Now()
	got, err := d.get(ctx, vip)
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err != nil:
		d.detail("TCP %s:80 from the client: %v after %s, want an answer from %s: FAILED", vip, err, took, want)
		d.problem("TCP %s:80 from the client: %v", vip, err)
	case got != want:
		d.detail("TCP %s:80 from the client: answered by %s in %s, want %s (the announcer): WRONG", vip, got, took, want)
		d.problem("TCP %s:80 from the client answered by %s, want %s", vip, got, want)
	default:
		d.detail("TCP %s:80 from the client: answered by %s in %s (the announcer): ok", vip, got, took)
	}
}

// get connects from the client to vip:80 and returns what the server behind it says.
func (d *demo) get(ctx context.Context, vip netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, tcpTimeout)
	defer cancel()
	conn, err := d.lab.Client.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, 80).String())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if n == 0 && err != nil {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// failover stops the speaker of node, the announcer of vip (Service web), with sig while the client asks who
// has vip every 10 ms, prints the outage, the new announcer and a TCP request to it, and returns the new
// announcer.
func (d *demo) failover(ctx context.Context, vip netip.Addr, node string, sig syscall.Signal) (string, error) {
	kind, how := "failover", "kill -9"
	if sig == syscall.SIGTERM {
		kind, how = "handover", "SIGTERM"
	}
	d.step("%s: %s the speaker of %s, web's announcer, while the client asks who has %s every %s",
		strings.ToUpper(kind[:1])+kind[1:], how, node, vip, watchEvery)
	old := d.nodes[node].MAC
	if got, err := d.responders(ctx, vip); err != nil {
		return "", err
	} else if len(got) != 1 || !slices.Equal(got[0], old) {
		d.problem("before the %s, %s was answered by %v, not %s alone", kind, vip, got, node)
	}

	series := &probe.Series{Every: watchEvery}
	moved := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan error, 1)
	go func() { // owned by failover, which waits for watched
		answers := 0
		watched <- d.p4.Watch(wctx, vip, watchEvery, func(seq int, sent time.Time, replies []probe.Reply) {
			series.Add(seq, sent, replies)
			for _, r := range replies {
				if !slices.Equal(r.MAC, old) {
					if answers == 0 {
						close(moved)
					}
					if answers++; answers == afterMove {
						cancel()
					}
					return
				}
			}
		})
	}()
	stopWatch := func() { cancel(); <-watched }

	select {
	case <-time.After(baseline): // answers from the announcer first
	case <-ctx.Done():
		stopWatch()
		return "", interrupted(ctx)
	}
	p := d.speakers[node]
	if err := p.Signal(sig); err != nil {
		stopWatch()
		return "", err
	}
	select {
	case <-moved:
	case <-ctx.Done():
		stopWatch()
		return "", interrupted(ctx)
	case <-time.After(moveTimeout):
		stopWatch()
		return "", fmt.Errorf("no other node answered for %s within %s of %s to the speaker of %s", vip, moveTimeout, how, node)
	}
	// The measurement ends after afterMove answers from the new node, or afterMoveTimeout after its first one.
	select {
	case <-watched:
	case <-time.After(afterMoveTimeout):
		stopWatch()
	case <-ctx.Done():
		stopWatch()
		return "", interrupted(ctx)
	}
	select {
	case <-p.Done():
	case <-time.After(stopTimeout):
		_ = p.Kill()
		<-p.Done()
		d.problem("the speaker of %s did not exit within %s of %s", node, stopTimeout, how)
	}
	if sig == syscall.SIGTERM {
		if err := cleanExit(p.Wait()); err != nil {
			d.problem("the speaker of %s exited uncleanly after SIGTERM: %v", node, err)
		}
	}

	var answering []string
	for _, m := range series.Last() {
		answering = append(answering, d.nodeOf(m))
	}
	var an *heraldv1.Announcement
	if err := d.poll(ctx, announceTimeout, func(ctx context.Context) (bool, string, error) {
		var why string
		var err error
		an, why, err = d.announcement(ctx, "web", node)
		return an != nil, why, err
	}); err != nil {
		return "", fmt.Errorf("waiting for web's new announcer: %w", err)
	}
	next := an.Status.Node
	gap := series.LongestGap().Round(time.Millisecond)
	d.detail("the client's probes are now answered by %s; web's Announcement names %s", d.seenText(answering), next)
	v := verdictOK
	if w := verdict(next, answering); w != verdictOK {
		v = w
		d.problem("%s: the Announcement names %s, the client sees %v", kind, next, answering)
	}
	if dup := series.Duplicates(); dup > 0 {
		v = wrongPrefix + "duplicates"
		d.problem("%s: %d probes were answered by two MACs", kind, dup)
	}
	d.detail("%s (%s): %s -> %s in %s; %d of %d probes unanswered; %d answered by two MACs: %s", kind, how, node,
		next, gap, series.Unanswered(), series.Len(), series.Duplicates(), v)
	d.request(ctx, vip, next)
	if ctx.Err() != nil {
		return "", interrupted(ctx)
	}
	return next, nil
}
