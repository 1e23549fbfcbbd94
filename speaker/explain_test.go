package speaker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/guard"
	"github.com/heraldlb/herald/internal/iface"
)

// explainIn asks the loop, as the HTTP handler does, why it answers vip or not.
func (h *loopHarness) explainIn(vip netip.Addr) Explanation {
	var ex Explanation
	h.inLoop(func() { ex = h.a.explain(vip) })
	return ex
}

func wantSummary(t *testing.T, what string, ex Explanation, answering bool, parts ...string) {
	t.Helper()
	if ex.Answering != answering {
		t.Errorf("%s: answering %v, want %v (%+v)", what, ex.Answering, answering, ex)
	}
	for _, p := range parts {
		if !strings.Contains(ex.Summary, p) {
			t.Errorf("%s: summary %q does not say %q (details %q)", what, ex.Summary, p, ex.Details)
		}
	}
}

// TestExplain: each reason a node answers an address or not is said, in the node's own words.
func TestExplain(t *testing.T) {
	nodes := nodeNames(3)
	ord := order(vip1, nodes)
	other := netip.MustParseAddr("198.51.100.99")

	t.Run("answering, then its link goes down", func(t *testing.T) {
		h := newLoop(t, ord[0], nodes, nodes, []netip.Addr{vip1}, nil).start()
		h.nextProbe("the probe")
		h.waitFor("answering", func() bool { return h.ann.answers(vip1) })
		wantSummary(t, "answering", h.explainIn(vip1), true, "answers "+vip1.String()+" on lab0")
		ex := h.explainIn(vip1)
		if len(ex.Details) == 0 || !strings.Contains(strings.Join(ex.Details, "\n"), "svc0") ||
			!strings.Contains(strings.Join(ex.Details, "\n"), strings.Join(ord, ", ")) {
			t.Errorf("details %q do not name the Service and the election order %v", ex.Details, ord)
		}
		wantSummary(t, "an address no Service has", h.explainIn(other), false, "no LoadBalancer Service")
		down := labLink(ord[0])
		down.Up = false
		h.inLoop(func() { h.a.setLinks([]iface.Link{down}) })
		h.decide()
		ex = h.explainIn(vip1)
		wantSummary(t, "link down", ex, false, "elected, but no interface")
		if !strings.Contains(strings.Join(ex.Details, "\n"), "link went down") {
			t.Errorf("link down: details %q do not say the link went down", ex.Details)
		}
	})
	t.Run("another node announces", func(t *testing.T) {
		h := newLoop(t, ord[1], nodes, nodes, []netip.Addr{vip1}, nil).start()
		wantSummary(t, "second in order", h.explainIn(vip1), false, ord[0]+" announces it")
	})
	t.Run("deferring to a speaker that answers", func(t *testing.T) {
		h, _, holder := deferring(t, nodes, time.Second)
		wantSummary(t, "deferring", h.explainIn(vip1), false, "speaker "+holder+" already answers it")
	})
	t.Run("a foreign device answers", func(t *testing.T) {
		h := newLoop(t, ord[0], nodes, nodes, []netip.Addr{vip1}, nil)
		h.wire.answers[vip1] = []sighting{{VIP: vip1, MAC: macOf("rogue"), Interface: "lab0", Kind: guard.KindARPReply}}
		h.start()
		h.nextProbe("the probe")
		h.waitFor("deferred", func() bool { return h.claim(vip1).State == claimDeferred })
		wantSummary(t, "foreign", h.explainIn(vip1), false, macOf("rogue").String()+", which is not a Herald speaker")
	})
	t.Run("over HTTP", func(t *testing.T) {
		h := newLoop(t, ord[1], nodes, nodes, []netip.Addr{vip1}, nil).start()
		srv := httptest.NewServer(h.a.explainHandler())
		defer srv.Close()
		resp, err := http.Get(srv.URL + ExplainPath + "?address=" + vip1.String())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ex Explanation
		if err := json.NewDecoder(resp.Body).Decode(&ex); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %s, %v", resp.Status, err)
		}
		wantSummary(t, "over HTTP", ex, false, ord[0]+" announces it")
		if ex.Node != ord[1] || ex.Address != vip1.String() {
			t.Errorf("node %q address %q, want %s and %s", ex.Node, ex.Address, ord[1], vip1)
		}
		bad, err := http.Get(srv.URL + ExplainPath + "?address=nope")
		if err != nil {
			t.Fatal(err)
		}
		bad.Body.Close()
		if bad.StatusCode != http.StatusBadRequest {
			t.Errorf("a bad address: %s, want 400", bad.Status)
		}
	})
}
