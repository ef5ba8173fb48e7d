//go:build race

package engine

// raceEnabled: the test binary runs with the race detector, under which
// sync.Pool drops Puts at random (allocation bounds do not hold).
const raceEnabled = true
