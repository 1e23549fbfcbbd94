//go:build race

package guard

// raceEnabled: the race detector's instrumentation allocates.
const raceEnabled = true
