package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controllers"
)

// controllerConfig is the configuration of `herald controller`.
type controllerConfig struct {
	Kubeconfig        string
	LoadBalancerClass string
	MetricsAddr       string
	ProbeAddr         string
	PprofAddr         string
	LeaderElect       bool
	LeaderElectionNS  string
	LeaderElectionID  string
	LeaseDuration     time.Duration
	RenewDeadline     time.Duration
	RetryPeriod       time.Duration
	SecretNamespace   string
	SecretName        string
	QPS               float64
	Burst             int
}

func runController(fs *flag.FlagSet) func(ctx context.Context) error {
	var c controllerConfig
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty means in-cluster, or $KUBECONFIG")
	fs.StringVar(&c.LoadBalancerClass, "load-balancer-class", controllers.DefaultLoadBalancerClass, "loadBalancerClass served besides Services that name none")
	fs.StringVar(&c.MetricsAddr, "metrics-bind-address", ":9120", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&c.ProbeAddr, "health-probe-bind-address", ":9121", "address of /healthz and /readyz; 0 disables them")
	fs.StringVar(&c.PprofAddr, "pprof-bind-address", "0", "address serving Go's profiler (/debug/pprof/), for diagnosing CPU or memory use; 0 (the default) disables it")
	fs.BoolVar(&c.LeaderElect, "leader-elect", true, "hold a Lease so that only one replica allocates")
	fs.StringVar(&c.LeaderElectionNS, "leader-election-namespace", "herald-system", "namespace of the leader Lease")
	fs.StringVar(&c.LeaderElectionID, "leader-election-id", "herald-controller.herald.dev", "name of the leader Lease")
	fs.DurationVar(&c.LeaseDuration, "leader-lease-duration", 15*time.Second, "how long a leader's Lease lasts without renewal")
	fs.DurationVar(&c.RenewDeadline, "leader-renew-deadline", 10*time.Second, "how long the leader tries to renew before giving up")
	fs.DurationVar(&c.RetryPeriod, "leader-retry-period", 2*time.Second, "how often candidates try to take the Lease")
	fs.StringVar(&c.SecretNamespace, "memberlist-secret-namespace", "herald-system", "namespace of the speakers' gossip key Secret")
	fs.StringVar(&c.SecretName, "memberlist-secret-name", "herald-memberlist", "name of the speakers' gossip key Secret, created with a random key when absent; empty disables")
	fs.Float64Var(&c.QPS, "kube-api-qps", 100, "queries per second to the API server (status writes)")
	fs.IntVar(&c.Burst, "kube-api-burst", 200, "burst of queries to the API server")
	return func(ctx context.Context) error { return c.run(ctx) }
}

func (c *controllerConfig) run(ctx context.Context) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.Kubeconfig
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	restConfig.QPS, restConfig.Burst = float32(c.QPS), c.Burst
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: c.MetricsAddr},
		HealthProbeBindAddress:        c.ProbeAddr,
		PprofBindAddress:              c.PprofAddr,
		LeaderElection:                c.LeaderElect,
		LeaderElectionNamespace:       c.LeaderElectionNS,
		LeaderElectionID:              c.LeaderElectionID,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &c.LeaseDuration,
		RenewDeadline:                 &c.RenewDeadline,
		RetryPeriod:                   &c.RetryPeriod,
		// An API server that is unreachable at start (the node's network not up yet) is waited for, not a reason
		// to exit: controller-runtime's default gives up on the caches after 2 minutes.
		Controller: config.Controller{CacheSyncTimeout: 24 * time.Hour},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := controllers.Setup(mgr, controllers.Options{
		LoadBalancerClass: c.LoadBalancerClass,
		Registerer:        crmetrics.Registry,
		MemberlistSecret:  types.NamespacedName{Namespace: c.SecretNamespace, Name: c.SecretName},
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready once the caches have synced: before that the controller allocates nothing.
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
