//go:build !race

package reorder

// raceEnabled: see race_test.go.
const raceEnabled = false
