// Package placement answers and changes where the speakers put load-balancer addresses, for the operator's
// commands herald drain, undrain and move: Load reads the cluster, the State's methods compute the moves a
// change would make with speaker.Simulate (the decision every speaker runs, not a copy of it), and Drain and
// Undrain make the change, which the speakers carry out by handoffs (speaker/handoff.go).
//
// The speakers' memberlist view is not in the API. Load takes the live members to be the nodes with a Ready
// speaker Pod, or, where no speaker Pod exists (speakers run outside Pods, as in the lab), every Node that is
// not NotReady; State.LiveFrom says which.
package placement
