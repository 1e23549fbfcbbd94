package guard

// Kind is what a frame claiming a VIP was. Its String form is the "kind"
// label of herald_guard_observations_total.
type Kind uint8

const (
	kindNone Kind = iota // not a claim; never delivered

	// KindARPReply is an ARP reply (opcode 2) whose sender IP is the VIP.
	KindARPReply
	// KindARPAnnouncement is a gratuitous ARP: a request or a reply whose
	// sender IP and target IP are both the VIP (RFC 5227 §3, arping -U/-A).
	KindARPAnnouncement
	// KindARPFromOwner is an ARP request whose sender IP is the VIP and whose
	// target is another address: a host using the VIP. The real sockets'
	// filter keeps ordinary requests in the kernel, so only injected conns
	// deliver it (see ListenInterface).
	KindARPFromOwner
	// KindARPProbe is an RFC 5227 probe: a request with sender IP 0.0.0.0
	// and target IP the VIP, i.e. another host about to take the address.
	KindARPProbe
	// KindNA is a Neighbor Advertisement whose target is the VIP, solicited
	// or not.
	KindNA
	// KindNSFromOwner is a Neighbor Solicitation whose IPv6 source is the VIP.
	KindNSFromOwner
	// KindDAD is a Duplicate Address Detection probe: a Neighbor
	// Solicitation from :: whose target is the VIP (RFC 4862 §5.4.2).
	KindDAD
	numKinds
)

var kindNames = [numKinds]string{
	kindNone:            "none",
	KindARPReply:        "arp_reply",
	KindARPAnnouncement: "arp_announcement",
	KindARPFromOwner:    "arp_from_owner",
	KindARPProbe:        "arp_probe",
	KindNA:              "na",
	KindNSFromOwner:     "ns_from_owner",
	KindDAD:             "dad",
}

// String returns one of a fixed set of names ("arp_reply",
// "arp_announcement", "arp_from_owner", "arp_probe", "na", "ns_from_owner",
// "dad"), or "unknown".
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// isProbe reports whether k is a probe for an address rather than a use of it.
func (k Kind) isProbe() bool { return k == KindARPProbe || k == KindDAD }

// result is what the watcher decided about one received frame. Its String
// form is the "result" label of herald_guard_frames_total.
type result uint8

const (
	resultNone         result = iota // parsers: a well-formed claim; never counted
	resultObserved                   // a claim about a managed VIP, delivered as an Observation
	resultDeduplicated               // a managed claim already delivered within DedupInterval
	resultOverflow                   // a managed claim dropped because the consumer lags
	resultProbed                     // a claim about an unmanaged VIP that only a running Probe wanted
	resultNotManaged                 // a well-formed claim about an address Herald does not manage
	resultOwnProbe                   // a probe this host sent (outgoing, from the interface's MAC)
	resultNotClaim                   // well-formed but claims no address (e.g. ARP opcode 3)
	resultWrongType                  // not ARP for IPv4 over Ethernet, not ICMPv6 NS/NA without extension headers
	resultMalformed                  // truncated, inconsistent, or invalid per RFC 826 / RFC 4861 §7.1
	resultHopLimit                   // NS/NA whose hop limit is not 255 (RFC 4861 §7.1.1, §7.1.2)
	resultBadChecksum                // NS/NA whose ICMPv6 checksum does not verify
	resultSpoofed                    // ARP sender hardware address differs from the Ethernet source
	numResults
)

var resultNames = [numResults]string{
	resultNone:         "none",
	resultObserved:     "observed",
	resultDeduplicated: "deduplicated",
	resultOverflow:     "overflow",
	resultProbed:       "probed",
	resultNotManaged:   "not_managed",
	resultOwnProbe:     "own_probe",
	resultNotClaim:     "not_claim",
	resultWrongType:    "wrong_type",
	resultMalformed:    "malformed",
	resultHopLimit:     "hop_limit",
	resultBadChecksum:  "bad_checksum",
	resultSpoofed:      "spoofed",
}

func (r result) String() string {
	if r < numResults {
		return resultNames[r]
	}
	return "unknown"
}
