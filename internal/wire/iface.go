package wire

import (
	"net"
	"slices"
)

// Interface identifies an Ethernet link: the one the announcer answers on, the guard watches and probes, and a
// Prober asks from.
type Interface struct {
	Index int              // kernel interface index, > 0
	Name  string           // interface name
	MAC   net.HardwareAddr // the interface's 6-byte Ethernet address; frames built for the link come from it
}

// InterfaceOf returns the Interface of ifi.
func InterfaceOf(ifi *net.Interface) Interface {
	return Interface{Index: ifi.Index, Name: ifi.Name, MAC: ifi.HardwareAddr}
}

// Net returns ifi as a *net.Interface (Index, Name and HardwareAddr set), as Listen takes it.
func (ifi Interface) Net() *net.Interface {
	return &net.Interface{Index: ifi.Index, Name: ifi.Name, HardwareAddr: ifi.MAC}
}

// Clone returns ifi with a MAC of its own.
func (ifi Interface) Clone() Interface {
	ifi.MAC = slices.Clone(ifi.MAC)
	return ifi
}

// Equal reports whether ifi and o are the same link: same index, name and MAC.
func (ifi Interface) Equal(o Interface) bool {
	return ifi.Index == o.Index && ifi.Name == o.Name && string(ifi.MAC) == string(o.MAC)
}
