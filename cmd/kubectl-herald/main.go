// Command kubectl-herald is Herald's kubectl plugin: with it on PATH, `kubectl herald
// status|probe|doctor|migrate|validate|drain|undrain|move|explain` runs the same commands as
// `herald status|probe|doctor|migrate|validate|drain|undrain|move|explain`.
package main

import (
	"os"

	"github.com/heraldlb/herald/internal/cli"
)

func main() { os.Exit(cli.PluginMain(os.Args[1:])) }
