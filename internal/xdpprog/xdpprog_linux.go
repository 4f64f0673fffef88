// Package xdpprog is the one program vswitch loads into the kernel: the
// XDP program of an AF_XDP port, which redirects every frame of the
// interface's receive queues to the port's AF_XDP socket of that queue
// (an XSKMAP indexed by queue). A queue without a socket passes its frames
// to the kernel's stack (bpf_redirect_map's default action), so nothing is
// lost silently on an interface with more queues than the port serves.
//
// The program is built here instruction by instruction with
// github.com/cilium/ebpf's asm package (no clang, no object file) and is
// attached through a bpf_link where the kernel has them (5.9 and later):
// the kernel then detaches it by itself when the process dies, however it
// dies. Older kernels attach it by netlink, which outlives the process; a
// program left behind that way is recognized by its name (Name) and by an
// owner record (the pid and start time of the process that attached it,
// in a small map the program references) and removed by the next open of
// the interface once its owner is gone (Inspect, RemoveStale). A program
// that is not vswitch's is never touched.
package xdpprog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/internal/netenv"
)

// Name is the program's name in the kernel (what `bpftool prog` and
// `ip link` show).
const Name = "vswitch_xsk"

// OwnerMapName is the name of the map holding the owner record.
const OwnerMapName = "vswitch_owner"

// ownerMagic starts an owner record ("vswitch" and a version byte).
const ownerMagic = 0x0176737769746368

// ownerSize is the owner record: magic u64, pid u32, pad u32, start u64
// (the process start time in clock ticks since boot, /proc/PID/stat
// field 22, which tells a reused pid from the original process).
const ownerSize = 24

// Mode is where the program runs.
type Mode int

const (
	Native  Mode = iota + 1 // in the driver (XDP_FLAGS_DRV_MODE)
	Generic                 // after the driver, on the skb (XDP_FLAGS_SKB_MODE)
)

func (m Mode) String() string {
	switch m {
	case Native:
		return "native"
	case Generic:
		return "generic"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

func (m Mode) flags() uint32 {
	if m == Native {
		return unix.XDP_FLAGS_DRV_MODE
	}
	return unix.XDP_FLAGS_SKB_MODE
}

// Program is a loaded redirect program with its maps.
type Program struct {
	prog  *ebpf.Program
	xsks  *ebpf.Map
	owner *ebpf.Map

	lnk     link.Link      // attached through a bpf_link
	nlNS    netns.NsHandle // attached by netlink: the namespace to detach in
	ifindex int
	mode    Mode
}

// Load creates the XSKMAP of queues entries and the program. It does not
// attach it.
func Load(queues int) (*Program, error) {
	if queues < 1 {
		queues = 1
	}
	p := &Program{nlNS: -1}
	var err error
	p.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "vswitch_xsks", Type: ebpf.XSKMap,
		KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
	if err != nil {
		return nil, fmt.Errorf("XSKMAP: %w", kernelErr(err))
	}
	p.owner, err = ebpf.NewMap(&ebpf.MapSpec{Name: OwnerMapName, Type: ebpf.Array,
		KeySize: 4, ValueSize: ownerSize, MaxEntries: 1, Flags: unix.BPF_F_RDONLY_PROG})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("owner map: %w", kernelErr(err))
	}
	var rec [ownerSize]byte
	binary.NativeEndian.PutUint64(rec[0:], ownerMagic)
	binary.NativeEndian.PutUint32(rec[8:], uint32(os.Getpid()))
	start, _ := startTime(os.Getpid())
	binary.NativeEndian.PutUint64(rec[16:], start)
	if err := p.owner.Put(uint32(0), rec[:]); err != nil {
		p.Close()
		return nil, fmt.Errorf("owner map: %w", err)
	}
	p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         Name,
		Type:         ebpf.XDP,
		License:      "Dual BSD/GPL",
		Instructions: instructions(p.xsks.FD(), p.owner.FD()),
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("loading the XDP program: %w", kernelErr(err))
	}
	return p, nil
}

// instructions is the program:
//
//	r5 = owner map       ; referenced only, so that the kernel lists it
//	r2 = ctx->rx_queue_index
//	r1 = xsks map
//	r3 = XDP_PASS        ; the action when the queue has no socket
//	r0 = bpf_redirect_map(r1, r2, r3)
//	exit
func instructions(xsks, owner int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R5, owner),
		asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // struct xdp_md: rx_queue_index at 16
		asm.LoadMapPtr(asm.R1, xsks),
		asm.Mov.Imm(asm.R3, 2), // XDP_PASS
		asm.FnRedirectMap.Call(),
		asm.Return(),
	}
}

// FD returns the program's file descriptor (for tests that run it).
func (p *Program) FD() int { return p.prog.FD() }

// SetSocket makes frames of queue q go to the AF_XDP socket fd.
func (p *Program) SetSocket(q, fd int) error {
	if err := p.xsks.Put(uint32(q), uint32(fd)); err != nil {
		return fmt.Errorf("XSKMAP entry %d: %w", q, err)
	}
	return nil
}

// Attach attaches the program to the interface ifindex of the calling
// thread's network namespace, through a bpf_link, or by netlink where the
// kernel has no XDP links or viaNetlink is set (tests of the fall-back).
func (p *Program) Attach(ifindex int, mode Mode, viaNetlink bool) error {
	if !viaNetlink {
		l, err := link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: ifindex, Flags: link.XDPAttachFlags(mode.flags())})
		if err == nil {
			p.lnk, p.ifindex, p.mode = l, ifindex, mode
			return nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return kernelErr(err)
		}
	}
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	if err := setXDP(ifindex, p.prog.FD(), unix.XDP_FLAGS_UPDATE_IF_NOEXIST|mode.flags(), -1); err != nil {
		ns.Close()
		return err
	}
	p.nlNS, p.ifindex, p.mode = ns, ifindex, mode
	return nil
}

// Mode returns the mode the program is attached in (0 if it is not).
func (p *Program) Mode() Mode { return p.mode }

// Close detaches the program (if attached) and releases it and its maps.
func (p *Program) Close() error {
	var err error
	if p.lnk != nil {
		err = p.lnk.Close()
		p.lnk = nil
	}
	if p.nlNS >= 0 {
		ns := &netenv.NS{H: p.nlNS}
		err = errors.Join(err, ns.Run(func() error {
			return setXDP(p.ifindex, -1, unix.XDP_FLAGS_REPLACE|p.mode.flags(), p.prog.FD())
		}))
		ns.Close()
		p.nlNS = -1
	}
	if p.prog != nil {
		p.prog.Close()
	}
	for _, m := range []*ebpf.Map{p.xsks, p.owner} {
		if m != nil {
			m.Close()
		}
	}
	return err
}

// Attached describes the XDP program found on an interface.
type Attached struct {
	ID   uint32
	Name string
	Mode string // native, generic, offload, multi
	// Ours: the program is vswitch's (its name and owner record say so).
	Ours bool
	// OwnerPID is the pid of the vswitch process that attached it (Ours).
	OwnerPID int
	// OwnerAlive: that process still runs.
	OwnerAlive bool
	mode       uint32 // XDP_ATTACHED_*
}

func (a *Attached) String() string {
	s := fmt.Sprintf("XDP program %q (id %d, %s mode)", a.Name, a.ID, a.Mode)
	if a.Ours {
		s += fmt.Sprintf(" of vswitch pid %d", a.OwnerPID)
	}
	return s
}

// Inspect returns what XDP program the interface ifindex of the calling
// thread's namespace runs, or nil if none.
func Inspect(ifindex int) (*Attached, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("interface %d: %w", ifindex, err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached || x.ProgId == 0 {
		return nil, nil
	}
	a := &Attached{ID: x.ProgId, mode: x.AttachMode}
	switch x.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		a.Mode = "native"
	case nl.XDP_ATTACHED_SKB:
		a.Mode = "generic"
	case nl.XDP_ATTACHED_HW:
		a.Mode = "offload"
	default:
		a.Mode = "multi"
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
	if err != nil {
		a.Name = "?"
		return a, nil
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		a.Name = "?"
		return a, nil
	}
	a.Name = info.Name
	if a.Name != Name {
		return a, nil
	}
	ids, _ := info.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		mi, err := m.Info()
		if err != nil || mi.Name != OwnerMapName || mi.ValueSize != ownerSize {
			m.Close()
			continue
		}
		rec := make([]byte, ownerSize)
		err = m.Lookup(uint32(0), &rec)
		m.Close()
		if err != nil || binary.NativeEndian.Uint64(rec) != ownerMagic {
			continue
		}
		a.Ours = true
		a.OwnerPID = int(binary.NativeEndian.Uint32(rec[8:]))
		start := binary.NativeEndian.Uint64(rec[16:])
		if st, err := startTime(a.OwnerPID); err == nil && st == start {
			a.OwnerAlive = true
		}
	}
	return a, nil
}

// ErrLive means a vswitch program found on an interface is attached
// through a bpf_link, so some process still holds it.
var ErrLive = errors.New("held by a live bpf_link")

// RemoveStale detaches a's program from ifindex, provided it is still
// the one attached there and was attached by netlink (a program held by a
// bpf_link belongs to a live process: ErrLive). Only call it for a
// program that is Ours and whose owner is gone.
func RemoveStale(ifindex int, a *Attached) error {
	if !a.Ours || a.OwnerAlive {
		return fmt.Errorf("%v: not a stale vswitch program", a)
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(a.ID))
	if err != nil {
		return fmt.Errorf("%v: %w", a, err)
	}
	defer prog.Close()
	flags := uint32(unix.XDP_FLAGS_REPLACE)
	switch a.mode {
	case nl.XDP_ATTACHED_DRV:
		flags |= unix.XDP_FLAGS_DRV_MODE
	case nl.XDP_ATTACHED_SKB:
		flags |= unix.XDP_FLAGS_SKB_MODE
	default:
		return fmt.Errorf("%v: mode not handled", a)
	}
	err = setXDP(ifindex, -1, flags, prog.FD())
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%v: %w", a, ErrLive)
	}
	return err
}

// setXDP sets (fd >= 0) or removes (fd -1) the XDP program of ifindex by
// netlink; with expected >= 0 only if that program is the one attached.
func setXDP(ifindex, fd int, flags uint32, expected int) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	x := nl.NewRtAttr(unix.IFLA_XDP|unix.NLA_F_NESTED, nil)
	x.AddRtAttr(nl.IFLA_XDP_FD, nl.Uint32Attr(uint32(int32(fd))))
	x.AddRtAttr(nl.IFLA_XDP_FLAGS, nl.Uint32Attr(flags))
	if expected >= 0 {
		x.AddRtAttr(unix.IFLA_XDP_EXPECTED_FD, nl.Uint32Attr(uint32(expected)))
	}
	req.AddData(x)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("netlink XDP setup: %w", kernelErr(err))
	}
	return nil
}

// startTime returns field 22 of /proc/pid/stat.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name (field 2) may contain spaces and parentheses: the
	// fields after it start after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 { // fields 3..22
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// kernelErr adds what to do to errors of the bpf(2) and netlink calls.
func kernelErr(err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: loading an XDP program needs root or CAP_BPF and CAP_NET_ADMIN", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: the kernel has no XDP or AF_XDP support (Linux 5.4 or later with CONFIG_XDP_SOCKETS)", err)
	}
	return err
}

// XDP features of a device (enum netdev_xdp_act).
const (
	FeatureBasic          = 1 << 0 // native XDP: XDP_PASS, XDP_DROP, XDP_ABORTED
	FeatureRedirect       = 1 << 1 // XDP_REDIRECT (to an AF_XDP socket)
	FeatureXSKZeroCopy    = 1 << 3 // AF_XDP zero-copy
	netdevCmdDevGet       = 1
	netdevAttrIfindex     = 1
	netdevAttrXDPFeatures = 3
)

// Features returns the XDP features the driver of ifindex (in the calling
// thread's namespace) announces through the netdev generic netlink
// family (Linux 6.3 and later); an error where the kernel cannot say.
func Features(ifindex int) (uint64, error) {
	fam, err := netlink.GenlFamilyGet("netdev")
	if err != nil {
		return 0, fmt.Errorf("netdev netlink family: %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), 0)
	// The generic netlink header, with its reserved bytes zero (strict
	// families refuse anything else), then the ifindex attribute.
	req.AddRawData([]byte{netdevCmdDevGet, 1, 0, 0})
	req.AddRawData(nl.NewRtAttr(netdevAttrIfindex, nl.Uint32Attr(uint32(ifindex))).Serialize())
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return 0, fmt.Errorf("netdev dev-get: %w", err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return 0, err
		}
		for _, a := range attrs {
			if a.Attr.Type == netdevAttrXDPFeatures && len(a.Value) >= 8 {
				return binary.NativeEndian.Uint64(a.Value), nil
			}
		}
	}
	return 0, errors.New("netdev dev-get: no xdp-features attribute")
}
