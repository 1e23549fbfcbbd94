// Package cli parses the herald command line into each component's configuration and runs the component.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

const usage = `herald: bare-metal LoadBalancer addresses on a Layer-2 network.

Usage:
  herald controller [flags]   allocate addresses from IPAddressPools to Services of type LoadBalancer
  herald speaker [flags]      on every node: elect one node per address and answer ARP/NDP for it
  herald doctor [flags]       on a node: check what breaks Layer-2 announcing and say how to fix it
  herald migrate [flags]      translate MetalLB pools, advertisements and annotations into Herald's

Run 'herald <command> -h' for the flags of a command.
`

// Main runs the command named by args[0] and returns the process exit code.
func Main(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "controller":
		return run(args[0], args[1:], os.Stderr, runController)
	case "speaker":
		return run(args[0], args[1:], os.Stderr, runSpeaker)
	case "doctor":
		return runDoctor(args[1:], os.Stdout, os.Stderr)
	case "migrate":
		return runMigrate(args[1:], os.Stdin, os.Stdout, os.Stderr)
	default:
		fmt.Fprintf(os.Stderr, "herald: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// command is one subcommand: it registers its flags and returns the function that runs it.
type command func(fs *flag.FlagSet) func(ctx context.Context) error

// run parses a subcommand's flags, sets up logging and runs it until a signal arrives (a second signal exits
// at once).
func run(name string, args []string, stderr io.Writer, cmd command) int {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	zopts := zap.Options{}
	zopts.BindFlags(fs)
	start := cmd(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts), zap.WriteTo(stderr)))
	ctx := ctrl.SetupSignalHandler()
	if err := start(ctx); err != nil {
		ctrl.Log.Error(err, "herald "+name+" failed")
		return 1
	}
	return 0
}
