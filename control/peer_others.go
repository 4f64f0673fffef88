//go:build !linux

package control

import "net"

// checkPeer relies on the socket's file mode where peer credentials are
// not available.
func checkPeer(*net.UnixConn, string) error { return nil }
