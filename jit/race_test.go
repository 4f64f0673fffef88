//go:build race

package jit_test

// raceDetector: the race detector's shadow memory and its own mappings
// grow with every allocation, so memory figures mean nothing under it.
const raceDetector = true
