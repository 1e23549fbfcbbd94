// Command herald-demo runs Herald's demo (make demo): a real control plane, the herald controller, the sample
// pools and Services of config/samples, the addresses they got, and a controller restart that keeps them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldlb/herald/internal/demo"
)

func main() {
	var cfg demo.Config
	flag.StringVar(&cfg.Bin, "bin", "./bin", "directory holding herald and kubectl (etcd and kube-apiserver come from <repo>/bin)")
	flag.BoolVar(&cfg.Wait, "wait", false, "after the demo, keep the control plane and the controller running until Ctrl-C")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: herald-demo [--bin DIR] [--wait]\n\n")
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
