package nettest

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var (
	counter  atomic.Uint32
	probe    sync.Once
	probeErr error
)

// Name returns a unique interface name (at most 15 bytes): a prefix of
// at most 4 bytes, the pid and a counter.
func Name(prefix string) string {
	if len(prefix) > 4 {
		prefix = prefix[:4]
	}
	return prefix + strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.FormatInt(int64(counter.Add(1)), 36)
}

// Require skips the test unless it runs as root and can create network
// namespaces.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (creates network namespaces and veth pairs): run the tests as root")
	}
	probe.Do(func() {
		var ns netns.NsHandle
		ns, probeErr = newNS()
		if probeErr == nil {
			ns.Close()
		}
	})
	if probeErr != nil {
		t.Skipf("cannot create a network namespace: %v", probeErr)
	}
}

// NS is a network namespace owned by a test.
type NS struct {
	H netns.NsHandle
}

func newNS() (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	if err := netns.Set(orig); err != nil {
		// This thread is stuck in the new namespace: let it die with the
		// goroutine instead of returning it to the pool.
		ns.Close()
		return -1, fmt.Errorf("restoring namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ns, nil
}

// NewNS creates an empty namespace with lo up and IPv6 off (no router
// solicitations or DAD noise on test links).
func NewNS(t testing.TB) *NS {
	t.Helper()
	Require(t)
	h, err := newNS()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	ns := &NS{H: h}
	t.Cleanup(func() { h.Close() })
	ns.Do(t, func() error {
		for _, k := range []string{"all", "default"} {
			os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	return ns
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
func (ns *NS) Run(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.H); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("restoring namespace: %w (fn: %v)", err, ferr)
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Handle returns a netlink handle inside the namespace.
func (ns *NS) Handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns.H)
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
	ha := a.Handle(t)
	la := netlink.NewLinkAttrs()
	la.Name = nameA
	if mtu > 0 {
		la.MTU = mtu
	}
	v := &netlink.Veth{LinkAttrs: la, PeerName: nameB, PeerNamespace: netlink.NsFd(int(b.H))}
	if mtu > 0 {
		v.PeerMTU = uint32(mtu)
	}
	if err := ha.LinkAdd(v); err != nil {
		t.Fatalf("veth %s/%s: %v", nameA, nameB, err)
	}
	t.Cleanup(func() {
		if l, err := ha.LinkByName(nameA); err == nil {
			ha.LinkDel(l)
		}
	})
	hb := b.Handle(t)
	for _, x := range []struct {
		h    *netlink.Handle
		name string
	}{{ha, nameA}, {hb, nameB}} {
		l, err := x.h.LinkByName(x.name)
		if err != nil {
			t.Fatalf("veth %s: %v", x.name, err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatalf("veth %s up: %v", x.name, err)
		}
	}
}

// AddAddr assigns cidr (e.g. "10.0.0.1/24") to link name in ns.
func AddAddr(t testing.TB, ns *NS, name, cidr string) {
	t.Helper()
	h := ns.Handle(t)
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("addr %s on %s: %v", cidr, name, err)
	}
}
