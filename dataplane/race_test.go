//go:build race

package dataplane

// raceEnabled: the race detector allocates on synchronisation, so the io_uring batch's
// zero-allocation assertion is skipped under -race.
const raceEnabled = true
