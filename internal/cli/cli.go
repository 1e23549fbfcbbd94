// Package cli parses the herald command line into each component's configuration and runs the component.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/heraldlb/herald/internal/memlimit"
)

const usage = `herald: bare-metal LoadBalancer addresses on a Layer-2 network.

Usage:
  herald controller [flags]   allocate addresses from IPAddressPools to Services of type LoadBalancer
  herald speaker [flags]      on every node: elect one node per address and answer ARP/NDP for it
  herald status [flags]       which node announces each LoadBalancer Service, and is it healthy (exit 1 if not)
  herald probe [flags] TARGET from this host: who answers ARP/NDP for an IP or a Service's addresses, like arping
                              (exit 1 unanswered, 3 more than one MAC)
  herald doctor [flags]       on a node: check what breaks Layer-2 announcing and say how to fix it
  herald migrate [flags]      translate MetalLB pools, advertisements and annotations into Herald's
  herald validate [flags]     find what CEL cannot see: overlapping pools, missing pools, selectors matching
                              nothing, addresses no pool holds... with the fix for each (exit 1 on errors)
  herald drain NODE [flags]   move every address off a node before maintenance, each by a handoff that misses
                              no request; --dry-run prints what goes where and changes nothing
  herald undrain NODE [flags] let a drained node take addresses again (they come back by fail-back)
  herald move NS/SVC --to NODE
                              pin a Service's addresses to a node, moved by a handoff; refused with the
                              reason if the node may not announce them; --dry-run prints only
  herald explain ADDRESS|NS/SVC
                              ask every speaker why it answers an address or not (exit 1 unless exactly one does)
  herald version [-o json]    the version and commit this binary was built from

Run 'herald <command> -h' for the flags of a command. Exit status 2 means bad usage (or, for status and
probe, an unreachable cluster or a socket error; for validate, an unreadable file or cluster). status,
probe, doctor, migrate, validate, drain, undrain, move and explain also run as a kubectl plugin: put bin/kubectl-herald on PATH and run 'kubectl herald status -A'.
`

// pluginUsage is the usage of kubectl-herald.
const pluginUsage = `kubectl herald: operate Herald, bare-metal LoadBalancer addresses on a Layer-2 network.

Usage:
  kubectl herald status [flags]        which node announces each LoadBalancer Service, and is it healthy
  kubectl herald probe [flags] TARGET  from this host: who answers ARP/NDP for an IP or NAMESPACE/SERVICE
  kubectl herald doctor [flags]        on a node: check what breaks Layer-2 announcing and how to fix it
  kubectl herald migrate [flags]       translate MetalLB's configuration into Herald's
  kubectl herald validate [flags]      find the mistakes CEL cannot see in files or the cluster, with fixes
  kubectl herald drain NODE [flags]    move every address off a node before maintenance (--dry-run: print only)
  kubectl herald undrain NODE [flags]  let a drained node take addresses again
  kubectl herald move NS/SVC --to NODE pin a Service's addresses to a node (--dry-run: print only)
  kubectl herald explain ADDRESS       ask every speaker why it answers an address or not

Run 'kubectl herald <command> -h' for the flags and exit codes of a command. The kubeconfig is kubectl's:
--kubeconfig, else $KUBECONFIG, else ~/.kube/config.
`

// Main runs the command named by args[0] and returns the process exit code.
func Main(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "controller":
			return run(args[0], args[1:], os.Stderr, runController)
		case "speaker":
			return run(args[0], args[1:], os.Stderr, runSpeaker)
		}
	}
	return operator("herald", usage, args, os.Stdin, os.Stdout, os.Stderr)
}

// PluginMain is the main of kubectl-herald, the kubectl plugin: kubectl runs it with the arguments after
// "kubectl herald". It runs the operator commands: status, probe, doctor, migrate, validate, drain, undrain,
// move and explain.
func PluginMain(args []string) int {
	return operator("kubectl herald", pluginUsage, args, os.Stdin, os.Stdout, os.Stderr)
}

// operator runs one of the commands an operator runs by hand; name and text are the program's name and usage.
func operator(name, text string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, text)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "probe":
		return runProbe(args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(args[1:], stdin, stdout, stderr)
	case "validate":
		return runValidate(args[1:], stdin, stdout, stderr)
	case "drain":
		return runDrain(args[1:], stdout, stderr)
	case "undrain":
		return runUndrain(args[1:], stdout, stderr)
	case "move":
		return runMove(args[1:], stdout, stderr)
	case "explain":
		return runExplain(args[1:], stdout, stderr)
	case "version":
		return runVersion(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", name, args[0], text)
		return 2
	}
}

// newFlagSet makes the flag set of an operator command whose -h prints text, then the flags.
func newFlagSet(name, text string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses an operator command's flags. When it returns done, the command returns code at once: ok
// after -h printed the usage, usage after a bad flag (the flag package printed why).
func parseFlags(fs *flag.FlagSet, args []string, ok, usage int) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		return ok, true
	default:
		return usage, true
	}
}

// usageError returns a function that prints a usage mistake of an operator command, pointing at its -h, and
// returns code.
func usageError(stderr io.Writer, name string, code int) func(format string, a ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(stderr, "herald "+name+": "+format+"\nRun 'herald "+name+" -h' for usage.\n", a...)
		return code
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
	// The runtime's own GOMAXPROCS follows a cgroup CPU limit (v1 or v2) since Go 1.25; its memory limit has to
	// be set from the cgroup's.
	if limit, why, err := memlimit.Set(); err != nil {
		ctrl.Log.Error(err, "reading the cgroup memory limit; the Go runtime keeps no soft limit")
	} else {
		ctrl.Log.Info("Go runtime limits", "memoryLimit", limit, "why", why, "GOMAXPROCS", runtime.GOMAXPROCS(0))
	}
	ctx := ctrl.SetupSignalHandler()
	if err := start(ctx); err != nil {
		ctrl.Log.Error(err, "herald "+name+" failed")
		return 1
	}
	return 0
}
