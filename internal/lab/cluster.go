package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/heraldlb/herald/internal/controlplane"
)

// Timeouts of the lab's children.
const (
	controlPlaneTimeout = 3 * time.Minute // etcd, kube-apiserver and the CRDs
	webTimeout          = 30 * time.Second
	readyPoll           = 100 * time.Millisecond
)

// startControlPlane runs this executable again in the cp namespace as the controlplane child, and waits for the
// kubeconfig it writes once the API server serves.
func (l *Lab) startControlPlane(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable to start the control plane: %w", err)
	}
	kubeconfig := filepath.Join(l.Logs, "kubeconfig")
	listen := net.JoinHostPort(l.CP.IPv4.String(), strconv.Itoa(APIServerPort))
	env := []string{EnvChild + "=controlplane", EnvListen + "=" + listen, EnvKubeconfig + "=" + kubeconfig,
		EnvRoot + "=" + l.Root}
	if l.bare {
		env = append(env, EnvBare+"=1")
	}
	p, err := l.start(l.CP, "controlplane", env, true, exe)
	if err != nil {
		return err
	}
	ready := func() (bool, error) {
		_, err := os.Stat(kubeconfig)
		return err == nil, nil
	}
	if err := l.waitReady(ctx, p, controlPlaneTimeout, ready); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		return fmt.Errorf("reading the lab's kubeconfig: %w", err)
	}
	if l.restConfig, err = clientcmd.RESTConfigFromKubeConfig(b); err != nil {
		return fmt.Errorf("parsing the lab's kubeconfig: %w", err)
	}
	l.Kubeconfig = kubeconfig
	l.AuditLog = filepath.Join(l.Logs, AuditLogName)
	return nil
}

// AuditLogName is the file name of the API server's audit log in the lab's Logs.
const AuditLogName = "audit.log"

// ComponentKubeconfig is the path of the kubeconfig that authenticates as the component's ServiceAccount
// (controlplane.Components), with a token from the TokenRequest API: the component then has exactly the rights
// config/ grants it. Empty without a control plane.
func (l *Lab) ComponentKubeconfig(c controlplane.Component) string {
	if l.Kubeconfig == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(l.Kubeconfig), controlplane.ComponentKubeconfig(c))
}

// waitReady polls ready until it holds, p exits, ctx ends or timeout passes.
func (l *Lab) waitReady(ctx context.Context, p *Proc, timeout time.Duration, ready func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		ok, err := ready()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v) before it was ready; its log %s ends:\n%s", p.name, p.Wait(), p.Log(),
				p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; its log %s ends:\n%s", p.name, ctx.Err(), p.Log(), p.LogTail())
		case <-tick.C:
		}
	}
}

// RESTConfig is a client configuration for the lab's API server that works from this process's own namespace:
// it dials from inside the cp namespace. It is nil without a control plane.
func (l *Lab) RESTConfig() *rest.Config {
	if l.restConfig == nil {
		return nil
	}
	cfg := rest.CopyConfig(l.restConfig)
	cfg.Dial = l.CP.DialContext
	return cfg
}

// Kubectl runs bin/kubectl --kubeconfig Kubeconfig with args inside the cp namespace.
func (l *Lab) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	if l.CP == nil || l.Kubeconfig == "" {
		return nil, errors.New("the lab has no control plane")
	}
	return l.CP.Run(ctx, l.Bin("kubectl"), append([]string{"--kubeconfig", l.Kubeconfig}, args...)...)
}

// StartWeb runs this executable again in h's namespace as the web child: a server answering reply to TCP
// connections and UDP datagrams on port, on every address. It returns once the server accepts connections.
func (l *Lab) StartWeb(ctx context.Context, h *Host, name string, port int, reply string) (*Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable to start a web server: %w", err)
	}
	env := []string{EnvChild + "=web", EnvListen + "=:" + strconv.Itoa(port), EnvReply + "=" + reply}
	p, err := l.start(h, name, env, false, exe)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(h.IPv4.String(), strconv.Itoa(port))
	ready := func() (bool, error) {
		c, err := h.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, nil
		}
		return true, c.Close()
	}
	if err := l.waitReady(ctx, p, webTimeout, ready); err != nil {
		return nil, errors.Join(err, p.Kill())
	}
	return p, nil
}

// DNAT makes h accept connections and datagrams to vip:port, an address it does not have, for its local server on
// port to: an nftables redirect in table inet herald-lab, the stand-in for kube-proxy. Packets reach h only when
// something (a speaker, a static neighbour entry) sends them to h's MAC.
func (l *Lab) DNAT(h *Host, vip netip.Addr, port, to int) error {
	vip = vip.Unmap()
	family := "ip"
	if vip.Is6() {
		family = "ip6"
	}
	var b strings.Builder
	b.WriteString("table inet herald-lab {\n" +
		"\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n}\n")
	for _, proto := range []string{"tcp", "udp"} {
		fmt.Fprintf(&b, "add rule inet herald-lab prerouting %s daddr %s %s dport %d redirect to :%d\n", family, vip,
			proto, port, to)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.RunInput(ctx, b.String(), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("installing DNAT %v:%d to :%d: %w", vip, port, to, err)
	}
	return nil
}
