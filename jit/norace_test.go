//go:build !race

package jit_test

const raceDetector = false
