// Package membership keeps the set of live Herald speakers with
// hashicorp/memberlist (SWIM with the Lifeguard extensions), encrypting gossip
// with a 32-byte AES-256-GCM key and publishing each speaker's announcing MACs
// and health state (the prefixes it withdrew from and the addresses it finds
// dark, see SetHealth) in its member metadata. Each member also keeps a book
// of every speaker MAC it has heard of, live member or not, which members
// exchange in memberlist's push/pull (KnownMACs, book.go), so that a speaker
// started while another was cut off still knows that one's frames for a
// speaker's.
//
// # Failure detection with DefaultTimings
//
// The arithmetic below follows memberlist v0.5.4 (state.go probe, probeNode
// and suspectNode; suspicion.go; util.go suspicionTimeout). With n members,
// PI = ProbeInterval, PT = ProbeTimeout, GI = GossipInterval, SM =
// SuspicionMult and SMTM = SuspicionMaxTimeoutMult, a member that crashes is
// declared dead after the sum of four delays:
//
//  1. Wait for a probe. Every member probes one other member per PI, walking
//     a shuffled list of its n-1 peers. Each survivor reaches the crashed
//     member once per round of n-1 ticks at an unrelated phase, so the first
//     of the n-1 survivors gets there after about PI*(n-1)/n on average
//     (at most about (n-1)*PI).
//  2. Probe window. The direct UDP ping waits PT; then IndirectChecks peers
//     are asked to ping the target and a TCP ping is tried, all bounded by
//     the probe deadline, so a probe fails exactly PI after it was sent. The
//     prober then marks the target suspect and gossips that.
//  3. Suspicion timeout. min = SM * max(1, log10(n)) * PI (the log term is
//     1 for n <= 10), max = SMTM * min. The timer starts at max and is pulled
//     down to min once k = SM-2 other members independently confirm the
//     suspicion (k = 0 and the timer is min from the start when n-2 < SM-2).
//     Confirmations arrive as other survivors' own probes of the target fail,
//     which in a small cluster happens within a tick or two.
//  4. Gossip. The first member whose timer fires broadcasts "dead"; the
//     others learn it within a GossipInterval or two (gossip goes to
//     GossipNodes random peers per GI, and every receiver re-gossips).
//
// DefaultTimings uses PI = 100ms, PT = 50ms, SM = 3, SMTM = 2 and GI = 20ms.
// For 3 to 10 members: k = 1, min = 300ms, max = 600ms, so a crash is
// typically declared dead after about 100 + 100 + 300 + 20 = 520ms, and at
// worst (last in every probe round, no confirmation, one lost gossip round)
// after about (n-1)*100 + 100 + 600 + 40ms, i.e. 940ms for 3 members and
// 1.6s for 10. Timings.DetectionTime computes these two figures.
// Graceful Leave needs no detection at all: the "left" message is gossiped
// within one or two GI.
//
// # The price of fast detection
//
// A crashed process and a frozen one look the same from outside, so the
// detection time is also how long a speaker may stall before it is declared
// dead. A member that does not answer for longer than about PI + min (here
// 0.4s; PI + max = 0.7s when no confirmation arrives), minus the gossip time
// its refutation needs, is declared dead and its VIPs move to other nodes:
// a stop-the-world pause, CPU starvation under a CFS quota, a SIGSTOP, a
// saturated link. When it resumes it sees
// the suspect or dead message about itself, refutes it with a higher
// incarnation, rejoins and may get its VIPs back: a false suspicion costs two
// failovers. Give the speaker a CPU request and no CPU limit (or a generous
// one) and a high priority class, and raise ProbeInterval and SuspicionMult
// together where that is not possible: every timing above scales with PI.
//
// The detector costs traffic that does not depend on cluster size: each
// member sends one ping per PI and answers, on average, one ping per PI, so
// with PI = 100ms a member sends about 20 and receives about 20 UDP packets
// per second (measured: 20.0/s received per member in an idle 5-member
// cluster, 74 bytes of encrypted payload each, about 100 bytes on the wire
// over IPv4, so about 2 kB/s each way), ten times memberlist's LAN default
// of PI = 1s. A failed probe adds 2*IndirectChecks indirect packets and a
// TCP connection attempt. Gossip is sent only while there are updates to
// spread, so the 20ms GossipInterval costs timer wake-ups, not packets, when
// nothing changes. Push/pull anti-entropy opens one TCP connection per
// member per PushPullInterval (10s).
//
// Lifeguard's local health awareness protects the cluster from a struggling
// member: a member whose probes fail without peers confirming (missed nacks)
// or that has to refute suspicions of itself raises its own awareness score,
// and memberlist multiplies its probe interval and probe deadline by
// (score+1), up to AwarenessMaxMultiplier (8, so 800ms). A member that is
// itself slow therefore probes less often and waits longer before suspecting
// others, instead of accusing healthy peers. It does not slow the detection
// of a crashed member by healthy ones.
//
// # Keys
//
// The gossip key is used as is as an AES-256-GCM key (memberlist's Keyring):
// it is never hashed or derived, and any length other than 32 bytes is
// refused. Members with different keys cannot talk at all.
package membership
