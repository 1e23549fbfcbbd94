package announce

import "github.com/heraldlb/herald/internal/wire"

// faultResults is the verdict on a frame the wire parsers refuse.
var faultResults = [wire.NumFaults]result{
	wire.OK:             resultNone,
	wire.FaultShort:     resultMalformed,
	wire.FaultEtherType: resultWrongType,
	wire.FaultARPType:   resultMalformed,
	wire.FaultNotND:     resultWrongType,
	wire.FaultMalformed: resultMalformed,
	wire.FaultHopLimit:  resultHopLimit,
	wire.FaultChecksum:  resultBadChecksum,
	wire.FaultOption:    resultMalformed,
}

// handleARP decides whether frame is an ARP request this interface (MAC mac,
// VIPs vips) must answer and, if so, writes the reply into out (at least
// wire.ARPFrameLen bytes) and returns its length with resultAnswered. It takes
// no lock and does not allocate.
//
// Any request whose target is one of our VIPs is answered, broadcast or
// unicast to us, including:
//   - RFC 5227 probes (sender IP 0.0.0.0): replying is how an owner defends
//     its address; the prober sees a packet whose sender IP is the address
//     it probed and backs off. The reply's target is then 0.0.0.0 and the
//     prober's MAC, as the kernel answers.
//   - another host's gratuitous request for our VIP (sender = target): the
//     unicast reply tells that host the address is in use.
//
// The reply goes to the request's sender hardware address (RFC 826), from
// our MAC, with sender = (our MAC, VIP) and target = the requester.
//
// A request for a VIP is dropped, and nothing learnt from it, when its
// sender hardware address is multicast, broadcast or zero, or its sender IP
// is multicast, limited broadcast or loopback (resultMalformed: no host
// sends those, and answering would aim replies at a group), or when the
// sender hardware address differs from the Ethernet source (resultSpoofed:
// a reply would go to a third party, the classic ARP reflection). Proxy-ARP
// and MAC-rewriting bridges that forward requests without fixing the
// sender hardware address are therefore not answered.
func handleARP(frame []byte, mac [6]byte, vips *wire.VIPSet, out []byte) (int, result) {
	var eth wire.Ethernet
	var req wire.ARP
	if f := req.Parse(frame, &eth); f != wire.OK {
		return 0, faultResults[f]
	}
	if eth.Src == mac {
		return 0, resultOwnFrame
	}
	if eth.Dst != mac && eth.Dst != wire.BroadcastMAC {
		return 0, resultOtherHost
	}
	if req.Op != wire.ARPRequest {
		return 0, resultWrongOpcode
	}
	if !vips.Has4(req.TargetIP) {
		return 0, resultNotOurs
	}
	if wire.IsMulticastMAC(req.SenderMAC) || req.SenderMAC == ([6]byte{}) || !validSenderIPv4(req.SenderIP) {
		return 0, resultMalformed
	}
	if req.SenderMAC != eth.Src {
		return 0, resultSpoofed
	}
	reply := wire.ARP{Op: wire.ARPReply, SenderMAC: mac, SenderIP: req.TargetIP, TargetMAC: req.SenderMAC, TargetIP: req.SenderIP}
	return wire.PutARP(out, req.SenderMAC, mac, &reply), resultAnswered
}

// validSenderIPv4 reports whether an ARP request may come from ip: 0.0.0.0
// (an RFC 5227 probe) or a unicast address outside 127.0.0.0/8. Multicast
// (224.0.0.0/4) and the limited broadcast address are never a host's own.
func validSenderIPv4(ip [4]byte) bool {
	return ip[0] != 127 && ip[0]&0xf0 != 0xe0 && ip != [4]byte{255, 255, 255, 255}
}
