// Command herald is Herald's single binary: `herald controller` allocates load-balancer addresses.
package main

import (
	"os"

	"github.com/heraldlb/herald/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
