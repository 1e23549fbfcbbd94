package cli

import (
	"flag"
	"io"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/heraldlb/herald/speaker"
)

// TestSpeakerFlagDefaults: with no flags given, the speaker's configuration is already what speaker.Config's
// defaults would make it: each default lives once (speaker.Default*), and no flag says otherwise.
func TestSpeakerFlagDefaults(t *testing.T) {
	fs := flag.NewFlagSet("speaker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f, _ := speakerCommand(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	got := f.cfg
	// Set at run time, or not exposed as flags (their defaults apply).
	ignore := cmpopts.IgnoreFields(speaker.Config{}, "Clock", "Registerer", "Logger", "RESTConfig", "BatchInterval", "RejoinInterval")
	if diff := cmp.Diff(got.Defaulted(), got, ignore, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("a flag's default differs from speaker.Config's (-defaults +flags):\n%s", diff)
	}
}
