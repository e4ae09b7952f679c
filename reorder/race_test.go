//go:build race

package reorder

// raceEnabled: the race detector allocates on synchronisation, so the
// zero-allocation assertions are skipped under -race.
const raceEnabled = true
