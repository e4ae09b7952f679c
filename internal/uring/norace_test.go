//go:build !race

package uring

// raceEnabled: see race_test.go.
const raceEnabled = false
