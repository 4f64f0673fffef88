package nettest

import (
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/govswitch/vswitch/internal/testenv"
)

// Name returns a unique interface name (at most 15 bytes): a prefix of
// at most 4 bytes, the pid and a counter.
func Name(prefix string) string { return netenv.Name(prefix) }

// Require skips the test unless it runs as root and can create network
// namespaces (fails it where VSWITCH_REQUIRE_PRIVILEGED=1, see testenv).
func Require(t testing.TB) {
	t.Helper()
	testenv.Netns(t)
}

// NS is a network namespace owned by a test.
type NS struct {
	H  netns.NsHandle
	ns *netenv.NS
}

// NewNS creates an empty namespace with lo up and IPv6 off (no router
// solicitations or DAD noise on test links), removed at cleanup.
func NewNS(t testing.TB) *NS {
	t.Helper()
	Require(t)
	ns, err := netenv.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return &NS{H: ns.H, ns: ns}
}

// Do runs fn on a thread inside the namespace. Sockets fn opens stay in
// the namespace and may be used from any goroutine afterwards.
func (ns *NS) Do(t testing.TB, fn func() error) {
	t.Helper()
	if err := ns.Run(fn); err != nil {
		t.Fatal(err)
	}
}

// Run is Do returning fn's error instead of failing the test.
func (ns *NS) Run(fn func() error) error { return ns.ns.Run(fn) }

// Handle returns a netlink handle inside the namespace.
func (ns *NS) Handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := ns.ns.Handle()
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// Veth creates a veth pair nameA (in a) <-> nameB (in b), both up, with
// optional MTU (0 = default). It is deleted at cleanup.
func Veth(t testing.TB, a *NS, nameA string, b *NS, nameB string, mtu int) {
	t.Helper()
	if err := netenv.Veth(a.ns, nameA, b.ns, nameB, mtu); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netenv.DelLink(a.ns, nameA) })
}

// AddAddr assigns cidr (e.g. "10.0.0.1/24") to link name in ns.
func AddAddr(t testing.TB, ns *NS, name, cidr string) {
	t.Helper()
	if err := netenv.AddAddr(ns.ns, name, cidr); err != nil {
		t.Fatal(err)
	}
}
