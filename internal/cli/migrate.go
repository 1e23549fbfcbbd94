package cli

import (
	"fmt"
	"io"
)

// runMigrate runs `herald migrate`. Not built yet.
func runMigrate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "herald migrate: not built yet")
	return 2
}
