package doctor

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPeerFindings(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name    string
		peers   []Peer
		errs    []error
		want    []brief
		mention string
	}{
		{name: "no peers"},
		{
			name:  "connected, with the default port",
			peers: []Peer{{Addr: "node-b"}},
			errs:  []error{nil},
			want:  []brief{{CheckMemberlistPort, SeverityOK, "node-b:7946", ""}},
		},
		{
			name:    "a timeout says a firewall may drop it",
			peers:   []Peer{{Addr: "2001:db8::3", Port: 7000}},
			errs:    []error{timeout},
			want:    []brief{{CheckMemberlistPort, SeverityError, "[2001:db8::3]:7000", "allow TCP and UDP port 7000 between all nodes (host firewall, security groups), and check the speaker runs on 2001:db8::3"}},
			mention: "a firewall drops it",
		},
		{
			name:    "other errors are quoted",
			peers:   []Peer{{Addr: "nowhere.invalid"}},
			errs:    []error{errors.New("lookup nowhere.invalid: no such host")},
			want:    []brief{{CheckMemberlistPort, SeverityError, "nowhere.invalid:7946", "allow TCP and UDP port 7946 between all nodes (host firewall, security groups), and check the speaker runs on nowhere.invalid"}},
			mention: "no such host",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := peerFindings(tt.peers, tt.errs)
			if diff := cmp.Diff(tt.want, briefs(got, nil)); diff != "" {
				t.Errorf("peerFindings() (-want +got):\n%s", diff)
			}
			if tt.mention != "" && (len(got) == 0 || !strings.Contains(got[0].Message, tt.mention)) {
				t.Errorf("message does not mention %q: %+v", tt.mention, got)
			}
		})
	}
}
