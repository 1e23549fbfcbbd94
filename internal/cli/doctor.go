package cli

import (
	"fmt"
	"io"
)

// runDoctor runs `herald doctor`. Not built yet.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "herald doctor: not built yet")
	return 2
}
