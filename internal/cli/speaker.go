package cli

import (
	"context"
	"flag"
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/probe"
	"github.com/heraldlb/herald/speaker"
)

// speakerFlags is the command line of `herald speaker`.
type speakerFlags struct {
	kubeconfig, bind, secretNS, secretName string
	qps                                    float64
	burst                                  int
	cfg                                    speaker.Config
}

func runSpeaker(fs *flag.FlagSet) func(ctx context.Context) error {
	_, run := speakerCommand(fs)
	return run
}

// speakerCommand defines the flags on fs; the returned speakerFlags hold their values once fs is parsed.
func speakerCommand(fs *flag.FlagSet) (*speakerFlags, func(ctx context.Context) error) {
	f := &speakerFlags{}
	c := &f.cfg
	t := membership.DefaultTimings()
	c.Timings = t
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; empty means in-cluster, or $KUBECONFIG")
	fs.StringVar(&c.NodeName, "node-name", "", "this node's name (required; in a DaemonSet, from spec.nodeName)")
	fs.StringVar(&f.bind, "bind-address", "", "address memberlist binds to; empty means the Node's first InternalIP")
	fs.IntVar(&c.Port, "memberlist-port", speaker.DefaultPort, "memberlist UDP and TCP port, the same on every node")
	fs.StringVar(&c.LoadBalancerClass, "load-balancer-class", controllers.DefaultLoadBalancerClass, "loadBalancerClass served besides Services that name none")
	fs.StringVar(&f.secretNS, "memberlist-secret-namespace", "herald-system", "namespace of the gossip key Secret")
	fs.StringVar(&f.secretName, "memberlist-secret-name", "herald-memberlist", "name of the gossip key Secret (field \"key\", 32 bytes)")
	fs.DurationVar(&c.Timings.ProbeInterval, "memberlist-probe-interval", t.ProbeInterval, "how often each speaker probes another; failure detection scales with it")
	fs.DurationVar(&c.Timings.ProbeTimeout, "memberlist-probe-timeout", t.ProbeTimeout, "how long a probe waits for an ack before asking others to probe indirectly")
	fs.IntVar(&c.Timings.SuspicionMult, "memberlist-suspicion-mult", t.SuspicionMult, "suspicion timeout = this × probe interval × max(1, log10(members)); a suspect that does not refute it in time is declared dead")
	fs.DurationVar(&c.Timings.GossipInterval, "memberlist-gossip-interval", t.GossipInterval, "how often state changes are gossiped")
	fs.IntVar(&c.GratuitousRepeats, "gratuitous-repeats", speaker.DefaultGratuitousRepeats, "gratuitous ARP / unsolicited NA sent after the first one when a node starts announcing")
	fs.DurationVar(&c.GratuitousInterval, "gratuitous-interval", speaker.DefaultGratuitousInterval, "interval between those repeats")
	fs.DurationVar(&c.Refresh, "gratuitous-refresh", 0, "re-send gratuitous ARP / unsolicited NA this often while announcing; 0 disables")
	fs.DurationVar(&c.LeaveTimeout, "leave-timeout", speaker.DefaultLeaveTimeout, "on SIGTERM, how long to wait for the leave message to go out")
	fs.StringVar(&c.ConflictPolicy, "conflict-policy", speaker.ConflictYield, "what to do when a device that is not a speaker answers for an address: yield (stop answering, report IPConflict, probe again with backoff) or defend (answer anyway and re-announce)")
	fs.DurationVar(&c.ConflictRetryMin, "conflict-retry-min", speaker.DefaultConflictRetryMin, "first delay before probing again an address another device answers for")
	fs.DurationVar(&c.ConflictRetryMax, "conflict-retry-max", speaker.DefaultConflictRetryMax, "longest delay between those probes (the delay doubles up to it)")
	fs.DurationVar(&c.ConflictClearAfter, "conflict-clear-after", speaker.DefaultConflictClearAfter, "a conflict not seen again for this long is resolved")
	fs.DurationVar(&c.HealthInterval, "health-interval", speaker.DefaultHealthInterval, "how often the watching speaker (the next node in an address's election order) probes each address it watches, like arping; negative disables health probing")
	fs.DurationVar(&c.HealthWait, "health-wait", probe.DefaultMonitorWait, "how long a health probe request waits for answers")
	fs.IntVar(&c.HealthAttempts, "health-attempts", probe.DefaultMonitorAttempts, "requests a health probe round sends while none is answered")
	fs.DurationVar(&c.HealthStatusRefresh, "health-status-refresh", 0, "if set, how often an unchanged health verdict is written to the Announcements again to refresh lastProbe; by default a verdict is written only when it changes (herald_health_oldest_probe_age_seconds shows freshness)")
	fs.DurationVar(&c.ImpairedHold, "impaired-hold", speaker.DefaultImpairedHold, "how long a speaker withdraws from a prefix where a watcher found an address dark after it re-announced it, or where its interface was down")
	fs.IntVar(&c.ProbeCount, "probe-count", speaker.DefaultProbeCount, "ARP probes / DAD solicitations sent before first answering for an address")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", speaker.DefaultProbeInterval, "interval between those probes")
	fs.DurationVar(&c.ProbeWait, "probe-wait", speaker.DefaultProbeWait, "how long to wait for a claimant after the last probe")
	fs.IntVar(&c.ProbeRate, "probe-rate", speaker.DefaultProbeRate, "most probe frames sent per second (a node taking over thousands of addresses paces its probes)")
	fs.Float64Var(&c.ReplyRatePerRequester, "reply-rate-per-requester", speaker.DefaultReplyRatePerRequester, "most ARP/NDP replies per second (and burst) to one requester for one address; negative means unlimited")
	fs.Float64Var(&c.ReplyRatePerInterface, "reply-rate-per-interface", speaker.DefaultReplyRatePerInterface, "most ARP (or NDP) replies per second on one interface; negative means unlimited")
	fs.DurationVar(&c.FailbackAfter, "failback-after", speaker.DefaultFailbackAfter, "hand an address back to the node the election prefers once it has been a member this long, by a handoff that costs no reply; 0 never moves an address that works")
	fs.DurationVar(&c.StallThreshold, "stall-threshold", speaker.DefaultStallThreshold, "a gap this long in the speaker's own execution (a CPU stall, SIGSTOP) is a stall: the speaker answers nothing queued meanwhile and withdraws the addresses others claimed while it was stopped (docs/concepts.md); negative disables")
	fs.Float64Var(&f.qps, "kube-api-qps", 100, "queries per second to the API server (Announcement writes)")
	fs.IntVar(&f.burst, "kube-api-burst", 200, "burst of queries to the API server")
	fs.StringVar(&c.MetricsAddr, "metrics-bind-address", ":9122", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&c.ProbeAddr, "health-probe-bind-address", ":9123", "address of /healthz; 0 disables it")
	fs.StringVar(&c.PprofAddr, "pprof-bind-address", "0", "address serving Go's profiler (/debug/pprof/), for diagnosing CPU or memory use; 0 (the default) disables it")
	return f, func(ctx context.Context) error {
		if c.NodeName == "" {
			return fmt.Errorf("--node-name is required")
		}
		if c.FailbackAfter == 0 {
			c.FailbackAfter = -1 // --failback-after=0: never (in speaker.Config, zero is the default)
		}
		if f.bind != "" {
			a, err := netip.ParseAddr(f.bind)
			if err != nil {
				return fmt.Errorf("--bind-address %q: %w", f.bind, err)
			}
			c.BindAddr = a
		}
		c.Secret = types.NamespacedName{Namespace: f.secretNS, Name: f.secretName}
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = f.kubeconfig
		rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
		if err != nil {
			return fmt.Errorf("loading kubeconfig: %w", err)
		}
		rc.QPS, rc.Burst = float32(f.qps), f.burst
		c.RESTConfig = rc
		c.Registerer = crmetrics.Registry
		c.Logger = ctrl.Log.WithName("speaker")
		return speaker.Run(ctx, *c)
	}
}
