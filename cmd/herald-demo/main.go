// Command herald-demo runs Herald's demo (make demo, as root): a three-node network-namespace lab with the real
// control plane, controller and speakers, the sample pools and Services of config/samples, who answers for every
// address on the wire, and the outage a client sees when the announcing speaker dies or hands over.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldlb/herald/internal/demo"
	"github.com/heraldlb/herald/internal/lab"
)

func main() {
	// The lab runs this binary again inside its namespaces for the control plane and the web servers.
	if handled, code := lab.Child(); handled {
		os.Exit(code)
	}
	var cfg demo.Config
	flag.StringVar(&cfg.Bin, "bin", "./bin", "directory holding herald and kubectl (etcd and kube-apiserver come from <repo>/bin)")
	flag.BoolVar(&cfg.Wait, "wait", false, "after the demo, keep the lab running until Ctrl-C")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: herald-demo [--bin DIR] [--wait]\n\nNeeds root (network namespaces): sudo make demo.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := demo.Run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "herald-demo: %v\n", err)
		os.Exit(1)
	}
}
