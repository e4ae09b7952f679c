//go:build race

package uring

// raceEnabled: the race detector allocates on synchronisation (the ring indices' atomics),
// so the zero-allocation assertion is skipped under -race.
const raceEnabled = true
