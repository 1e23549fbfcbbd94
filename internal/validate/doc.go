// Package validate finds the mistakes in a Herald (or MetalLB) Layer-2 configuration that its schema and CEL
// rules cannot see, because they span objects: overlapping pools, advertisements naming pools that do not exist
// or selecting no pool or node, pools nobody announces, Services requesting addresses no pool holds, interfaces
// no node answers on, and externalTrafficPolicy Local Services without a ready endpoint. Check is a pure function
// of a Snapshot of objects; each Finding says what is wrong and how to fix it.
package validate
