//go:build race

package endpoint

// raceEnabled shrinks the largest transfers: the race detector makes every
// byte many times slower.
const raceEnabled = true
