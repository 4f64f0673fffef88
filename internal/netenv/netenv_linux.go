// Package netenv builds small network topologies for the demo, the
// end-to-end tests and the benchmark scenarios: network namespaces joined
// by veth pairs. Namespaces are anonymous (held by a handle, never mounted
// under /var/run/netns), so they and their links disappear when the last
// handle is closed, even if the process dies.
package netenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var counter atomic.Uint32

// Name returns a unique interface name of at most 15 bytes: a prefix of at
// most 4 bytes, the pid and a counter.
func Name(prefix string) string {
	if len(prefix) > 4 {
		prefix = prefix[:4]
	}
	return prefix + strconv.FormatInt(int64(os.Getpid()), 36) + "y" + strconv.FormatInt(int64(counter.Add(1)), 36)
}

// Check reports why namespaces cannot be used here (nil if they can).
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: network namespaces and veth pairs are created")
	}
	ns, err := New()
	if err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	return ns.Close()
}

// NS is a network namespace.
type NS struct {
	H netns.NsHandle
}

// New creates an empty namespace with lo up and IPv6 off (no router
// solicitations or DAD traffic on its links).
func New() (*NS, error) {
	h, err := newHandle()
	if err != nil {
		return nil, err
	}
	ns := &NS{H: h}
	err = ns.Run(func() error {
		for _, k := range []string{"all", "default"} {
			os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

func newHandle() (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{-1, err}
			return
		}
		defer orig.Close()
		h, err := netns.New()
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{-1, err}
			return
		}
		if err := netns.Set(orig); err != nil {
			// The thread is stuck in the new namespace: it dies with this
			// goroutine since it stays locked.
			c <- result{h, nil}
			return
		}
		runtime.UnlockOSThread()
		c <- result{h, nil}
	}()
	r := <-c
	return r.h, r.err
}

// Open opens the namespace mounted at path (such as /var/run/netns/NAME).
func Open(path string) (*NS, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return &NS{H: h}, nil
}

// Close drops this handle; the namespace goes away with its last user.
func (ns *NS) Close() error {
	if ns == nil || ns.H < 0 {
		return nil
	}
	err := ns.H.Close()
	ns.H = -1
	return err
}

// Run runs fn on an OS thread inside the namespace. Sockets fn opens stay
// in the namespace and may be used from any goroutine afterwards.
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
			errc <- errors.Join(ferr, fmt.Errorf("restoring namespace: %w", err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Handle returns a netlink handle inside the namespace; close it after use.
func (ns *NS) Handle() (*netlink.Handle, error) {
	return netlink.NewHandleAt(ns.H)
}

// Veth creates the veth pair nameA (in a) <-> nameB (in b), both up, with
// the given MTU (0: default).
func Veth(a *NS, nameA string, b *NS, nameB string, mtu int) error {
	ha, err := a.Handle()
	if err != nil {
		return err
	}
	defer ha.Close()
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
		return fmt.Errorf("veth %s/%s: %w", nameA, nameB, err)
	}
	hb, err := b.Handle()
	if err != nil {
		return err
	}
	defer hb.Close()
	for _, x := range []struct {
		h    *netlink.Handle
		name string
	}{{ha, nameA}, {hb, nameB}} {
		l, err := x.h.LinkByName(x.name)
		if err != nil {
			return fmt.Errorf("veth %s: %w", x.name, err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("veth %s up: %w", x.name, err)
		}
	}
	return nil
}

// withLink runs fn with a netlink handle in ns and the link called name.
func withLink(ns *NS, name string, fn func(h *netlink.Handle, l netlink.Link) error) error {
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return fn(h, l)
}

// DelLink deletes link name in ns.
func DelLink(ns *NS, name string) error {
	return withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error { return h.LinkDel(l) })
}

// AddAddr assigns cidr (e.g. "10.0.0.1/24") to link name in ns.
func AddAddr(ns *NS, name, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	return withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("address %s on %s: %w", cidr, name, err)
		}
		return nil
	})
}

// MAC returns the hardware address of link name in ns.
func MAC(ns *NS, name string) (mac net.HardwareAddr, err error) {
	err = withLink(ns, name, func(_ *netlink.Handle, l netlink.Link) error {
		mac = l.Attrs().HardwareAddr
		return nil
	})
	return mac, err
}

// SetMAC sets the hardware address of link name in ns.
func SetMAC(ns *NS, name string, mac net.HardwareAddr) error {
	return withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error { return h.LinkSetHardwareAddr(l, mac) })
}
