//go:build !linux

// Package xdpprog is the XDP program of AF_XDP ports; it exists on Linux
// only.
package xdpprog
