package election

import (
	"fmt"
	"testing"
)

// FuzzTableMatchesWinner decodes data into SetNodes, Forget and Elect
// operations on a small universe and checks every election against Winner.
func FuzzTableMatchesWinner(f *testing.F) {
	f.Add([]byte{0x00, 0xff, 0x10, 0x21, 0x32, 0x80, 0x07, 0x43})
	f.Add([]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09})
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes := propNames("n", 16)
		tab := NewTable()
		var universe []string
		for i := 0; i+2 < len(data); i += 3 {
			op, a, b := data[i], data[i+1], data[i+2]
			key := fmt.Sprintf("198.51.100.%d", op%8)
			mask := uint16(a)<<8 | uint16(b)
			in := func(n string) bool {
				var idx int
				fmt.Sscanf(n, "n%02d", &idx)
				return mask&(1<<idx) != 0
			}
			switch op >> 6 {
			case 0:
				universe = filter(nodes, in)
				tab.SetNodes(universe)
			case 1:
				tab.Forget(key)
			default:
				want, wantOK := Winner(key, filter(universe, in))
				got, ok := tab.Elect(key, in)
				if got != want || ok != wantOK {
					t.Fatalf("Elect(%s) = %q, %v; Winner = %q, %v", key, got, ok, want, wantOK)
				}
			}
		}
	})
}
