package cli

import (
	"bytes"
	"encoding/json"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/version"
)

func TestVersion(t *testing.T) {
	defer func(v, c string) { version.Version, version.Commit = v, c }(version.Version, version.Commit)
	version.Version, version.Commit = "v9.8.7", "0123abcd"
	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, c := range []struct {
		name       string
		args       []string
		code       int
		wantStdout string
	}{
		{"text", []string{"version"}, 0, "herald v9.8.7 (commit 0123abcd, " + runtime.Version() + ", " + platform + ")\n"},
		{"json", []string{"version", "-o", "json"}, 0,
			`{"version":"v9.8.7","commit":"0123abcd","goVersion":"` + runtime.Version() + `","platform":"` + platform + `"}` + "\n"},
		{"bad format", []string{"version", "-o", "yaml"}, 2, ""},
		{"extra argument", []string{"version", "now"}, 2, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := operator("herald", usage, c.args, nil, &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit code %d, want %d; stderr %q", code, c.code, stderr.String())
			}
			if diff := cmp.Diff(c.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if c.code == 0 && c.args[len(c.args)-1] == "json" {
				var info version.Info
				if err := json.Unmarshal(stdout.Bytes(), &info); err != nil || info.Version != "v9.8.7" {
					t.Errorf("-o json does not decode: %v, %+v", err, info)
				}
			}
		})
	}
}

// TestVersionUnstamped: a plain `go build` says devel rather than an empty version.
func TestVersionUnstamped(t *testing.T) {
	defer func(v, c string) { version.Version, version.Commit = v, c }(version.Version, version.Commit)
	version.Version, version.Commit = "", ""
	if got := version.Get(); got.Version != "devel" || got.Commit == "" {
		t.Errorf("unstamped: %+v, want version devel and some commit", got)
	}
}
