package wire

import (
	"net"
	"testing"
)

func TestInterface(t *testing.T) {
	nifi := &net.Interface{Index: 2, Name: "eth0", HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}, MTU: 1500}
	ifi := InterfaceOf(nifi)
	if ifi.Index != 2 || ifi.Name != "eth0" || ifi.MAC.String() != "02:00:00:00:00:01" {
		t.Fatalf("InterfaceOf = %+v", ifi)
	}
	if n := ifi.Net(); n.Index != 2 || n.Name != "eth0" || n.HardwareAddr.String() != "02:00:00:00:00:01" {
		t.Errorf("Net = %+v", n)
	}
	c := ifi.Clone()
	if !c.Equal(ifi) {
		t.Error("a clone is not Equal")
	}
	c.MAC[5] = 9
	if ifi.MAC[5] != 1 {
		t.Error("Clone shares the MAC")
	}
	if c.Equal(ifi) {
		t.Error("Equal with another MAC")
	}
	for _, o := range []Interface{{Index: 3, Name: "eth0", MAC: ifi.MAC}, {Index: 2, Name: "eth1", MAC: ifi.MAC}} {
		if o.Equal(ifi) {
			t.Errorf("%+v Equal %+v", o, ifi)
		}
	}
}
