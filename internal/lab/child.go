package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/heraldlb/herald/internal/controlplane"
)

// The environment of a child role: the lab starts its own executable again inside a namespace with these set.
const (
	EnvChild      = "HERALD_LAB_CHILD"      // the role: controlplane, web or confine
	EnvListen     = "HERALD_LAB_LISTEN"     // controlplane: the API server's host:port; web: the listen address
	EnvKubeconfig = "HERALD_LAB_KUBECONFIG" // controlplane: where to write the admin kubeconfig
	EnvRoot       = "HERALD_LAB_ROOT"       // controlplane: the repository root
	EnvReply      = "HERALD_LAB_REPLY"      // web: what to answer
	EnvBare       = "HERALD_LAB_BARE"       // controlplane: "1" leaves Herald out (Config.Bare)
)

// Child runs the lab's child roles when this process was started as one; call it first in TestMain and in main():
//
//	if handled, code := lab.Child(); handled {
//		os.Exit(code)
//	}
//
// Roles: controlplane (etcd and kube-apiserver until SIGTERM), web (a TCP and UDP answering server until
// SIGTERM), confine (restricts itself as EnvConfine says and executes its arguments: StartConfined).
func Child() (handled bool, code int) {
	role, ok := os.LookupEnv(EnvChild)
	if !ok {
		return false, 0
	}
	// The role's own children must not take the role.
	_ = os.Unsetenv(EnvChild)
	if role == "confine" {
		err := confineAndExec(os.Args[1:]) // returns only on error
		fmt.Fprintf(os.Stderr, "lab confine: %v\n", err)
		return true, 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch role {
	case "controlplane":
		err = runControlPlane(ctx, os.Getenv(EnvListen), os.Getenv(EnvKubeconfig), os.Getenv(EnvRoot),
			os.Getenv(EnvBare) == "1")
	case "web":
		err = runWeb(ctx, os.Getenv(EnvListen), os.Getenv(EnvReply), func(port int) {
			fmt.Printf("lab web: listening on port %d\n", port)
		})
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab %s: %v\n", role, err)
		return true, 1
	}
	return true, 0
}

// runControlPlane starts etcd and kube-apiserver with the API server on listen and its audit log next to
// kubeconfig (AuditLogName), installs Herald's namespace, ServiceAccounts and RBAC from the repository, writes
// each component's kubeconfig (controlplane.ComponentKubeconfig) next to kubeconfig and then the admin
// kubeconfig to kubeconfig (atomically, last: the parent waits for it), and stops them when ctx ends. A bare
// control plane has no CRDs and installs nothing of Herald's.
func runControlPlane(ctx context.Context, listen, kubeconfig, root string, bare bool) error {
	if listen == "" || kubeconfig == "" {
		return fmt.Errorf("%s and %s must be set", EnvListen, EnvKubeconfig)
	}
	dir := filepath.Dir(kubeconfig)
	cp, err := controlplane.StartWith(controlplane.Options{ListenAddress: listen, Root: root,
		AuditLog: filepath.Join(dir, AuditLogName), Bare: bare})
	if err != nil {
		return err
	}
	fmt.Printf("lab controlplane: API server at %s\n", cp.Config.Host)
	if !bare {
		err = cp.InstallRBAC(ctx)
		if err == nil {
			err = cp.WriteComponentKubeconfigs(ctx, dir)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("installing the components' identities: %w", err), cp.Stop())
		}
	}
	kc, err := os.ReadFile(cp.Kubeconfig)
	if err == nil {
		err = writeAtomic(kubeconfig, kc)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("writing the kubeconfig: %w", err), cp.Stop())
	}
	fmt.Printf("lab controlplane: ready, kubeconfig %s\n", kubeconfig)
	<-ctx.Done()
	fmt.Printf("lab controlplane: stopping\n")
	if err := cp.Stop(); err != nil {
		return fmt.Errorf("stopping the control plane: %w", err)
	}
	fmt.Printf("lab controlplane: stopped\n")
	return nil
}

// writeAtomic writes a file that readers see either whole or not at all.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runWeb answers every TCP connection to listen with reply and a newline, then closes it, and every UDP
// datagram with reply, from the address it was sent to: a stand-in for a pod behind kube-proxy. ready is called
// with the port once the servers listen. It returns when ctx ends.
func runWeb(ctx context.Context, listen, reply string, ready func(port int)) error {
	if listen == "" {
		listen = ":8080"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", listen, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on tcp %s: %w", listen, err)
	}
	if port == 0 { // let the UDP sockets take the port the system gave the TCP listener
		port = ln.Addr().(*net.TCPAddr).Port
	}
	closers := []func() error{ln.Close}
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	var servers []func()
	servers = append(servers, func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(reply + "\n"))
			_ = c.Close()
		}
	})
	// One UDP socket per family, each reading the destination address of every datagram so that the answer
	// comes from it: after a DNAT, conntrack matches the answer only if it does.
	hostIP := netip.Addr{}
	if host != "" {
		if hostIP, err = netip.ParseAddr(host); err != nil {
			return fmt.Errorf("listen address %q: %w", listen, err)
		}
	}
	if !hostIP.IsValid() || hostIP.Is4() {
		pc, err := lc.ListenPacket(ctx, "udp4", net.JoinHostPort(unmappedOr(hostIP, "0.0.0.0"), strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("listening on udp4 %s: %w", listen, err)
		}
		closers = append(closers, pc.Close)
		c := ipv4.NewPacketConn(pc)
		if err := c.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
			return fmt.Errorf("asking for destination addresses on udp4 %s: %w", listen, err)
		}
		servers = append(servers, func() {
			buf := make([]byte, 2048)
			for {
				_, cm, src, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				var out *ipv4.ControlMessage
				if cm != nil {
					out = &ipv4.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex}
				}
				_, _ = c.WriteTo([]byte(reply), out, src)
			}
		})
	}
	if !hostIP.IsValid() || hostIP.Is6() {
		pc, err := lc.ListenPacket(ctx, "udp6", net.JoinHostPort(unmappedOr(hostIP, "::"), strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("listening on udp6 %s: %w", listen, err)
		}
		closers = append(closers, pc.Close)
		c := ipv6.NewPacketConn(pc)
		if err := c.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
			return fmt.Errorf("asking for destination addresses on udp6 %s: %w", listen, err)
		}
		servers = append(servers, func() {
			buf := make([]byte, 2048)
			for {
				_, cm, src, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				var out *ipv6.ControlMessage
				if cm != nil {
					out = &ipv6.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex}
				}
				_, _ = c.WriteTo([]byte(reply), out, src)
			}
		})
	}
	var wg sync.WaitGroup
	for _, serve := range servers {
		wg.Go(serve)
	}
	ready(port)
	<-ctx.Done()
	for _, c := range closers {
		_ = c()
	}
	closers = nil
	wg.Wait()
	return nil
}

func unmappedOr(a netip.Addr, def string) string {
	if !a.IsValid() {
		return def
	}
	return a.Unmap().String()
}
