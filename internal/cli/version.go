package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/heraldlb/herald/internal/version"
)

const versionUsage = `Usage: herald version [-o text|json]

Prints the version and commit the binary was built from (make build and make image stamp them), the Go version
and the platform.
`

// runVersion prints what runs: `herald version`.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, versionUsage) }
	output := fs.String("o", "text", "output format: text or json")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "herald version: unexpected arguments %q\n", fs.Args())
		return 2
	}
	info := version.Get()
	switch *output {
	case "text":
		fmt.Fprintln(stdout, info)
	case "json":
		b, _ := json.Marshal(info)
		fmt.Fprintf(stdout, "%s\n", b)
	default:
		fmt.Fprintf(stderr, "herald version: -o %q: want text or json\n", *output)
		return 2
	}
	return 0
}
