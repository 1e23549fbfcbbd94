package ipam

import (
	"strings"
	"time"
)

// OwnerFirst orders two pools by the rule that decides which one owns an address that several list: the one
// created first, then the one whose name sorts first. Sorted with it, pools put each address's owner before every
// other pool that lists it, so a pool added later never takes an address an existing one hands out. The
// controller (which pool allocates an address) and the speaker (which pool, hence which advertisements, an
// announced address follows) both sort with it.
func OwnerFirst(aCreated time.Time, aName string, bCreated time.Time, bName string) int {
	if c := aCreated.Compare(bCreated); c != 0 {
		return c
	}
	return strings.Compare(aName, bName)
}
