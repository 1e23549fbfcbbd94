package speaker

import (
	"context"
	"net/netip"

	"github.com/heraldlb/herald/internal/guard"
	l2 "github.com/heraldlb/herald/internal/wire"
)

// guardWire is the wire the loop uses in production: a guard.Watcher.
type guardWire struct {
	w  *guard.Watcher
	pc guard.ProbeConfig
}

func (g *guardWire) SetInterfaces(ifs []l2.Interface) { g.w.SetInterfaces(ifs) }

func (g *guardWire) SetVIPs(vips []netip.Addr) { g.w.SetVIPs(vips) }

func (g *guardWire) Sightings() <-chan sighting { return g.w.Observations() }

func (g *guardWire) Dropped() uint64 { return g.w.Dropped() }

// Probe probes vip on ifi and returns every claimant as a sighting.
func (g *guardWire) Probe(ctx context.Context, ifi l2.Interface, vip netip.Addr) ([]sighting, error) {
	rs, err := g.w.Probe(ctx, ifi, vip, g.pc)
	out := make([]sighting, 0, len(rs))
	for _, r := range rs {
		out = append(out, sighting{VIP: vip, MAC: r.MAC, Kind: r.Kind, Interface: ifi.Name, Outgoing: r.Outgoing, At: r.At})
	}
	return out, err
}
