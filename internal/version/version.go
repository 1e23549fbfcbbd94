// Package version holds what the build stamped into the binary: `go build -ldflags "-X
// github.com/heraldlb/herald/internal/version.Version=v0.1.0 -X ...Commit=<sha>"` (make build and make image do).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are set by the linker; a plain `go build` leaves them empty and String falls back to what
// the Go toolchain recorded (the VCS revision of the work tree, when there was one).
var (
	Version string
	Commit  string
)

// Info is what `herald version` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the stamped version, with "devel" and the toolchain's VCS revision standing in for what the linker
// did not set.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					i.Commit = s.Value
				}
			}
		}
	}
	return i
}

// String is the one-line form: "herald v0.1.0 (commit 0123abc, go1.26.8, linux/amd64)".
func (i Info) String() string {
	return fmt.Sprintf("herald %s (commit %s, %s, %s)", i.Version, i.Commit, i.GoVersion, i.Platform)
}
