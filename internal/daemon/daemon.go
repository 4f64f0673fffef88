// Package daemon is the vswitch daemon: a switch, the program installed in
// it with its maps, and the handlers of the control protocol.
package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/loader"
	"github.com/govswitch/vswitch/maps"
	vswitch "github.com/govswitch/vswitch/switch"
	"github.com/govswitch/vswitch/vm"
)

// Config configures a daemon. The zero value means defaults.
type Config struct {
	// Workers is the number of worker goroutines serving every port, and
	// the number of per-CPU map slots; default one per CPU.
	Workers int
	// BusyPoll is the default busy-poll window of ports (0: the switch's
	// default, negative: none).
	BusyPoll time.Duration
	// Batch is the switch's batch size; default 256.
	Batch int
	// Netns, when set, is the network namespace ports are opened in.
	Netns *netenv.NS
	// Logger; nil discards.
	Logger *slog.Logger
}

// Daemon holds the switch and its program.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	sw      *vswitch.Switch
	started time.Time

	mu    sync.Mutex // serializes control operations
	prog  *loaded
	kinds map[string]string // port name -> type

	// state, when set, keeps every acknowledged change (see state.go).
	state *store
	// mapMu orders control-plane map writes with their records in state.
	mapMu sync.Mutex
	// unrestored holds ports of the saved state that could not be
	// attached again at start (name -> why), kept at their index. Under
	// umu: port show reads it without mu.
	umu        sync.Mutex
	unrestored map[string]string
	// fallback: the saved program could not be installed at start; the
	// saved map state is left alone.
	fallback bool
	// progGen counts program installations (changed under mapMu).
	progGen atomic.Uint64
	xdp     map[string]*bpfport.AFXDP
	// vxlan holds the attach parameters of VXLAN ports (under mu): fdb
	// add and del save their static entries with them.
	vxlan map[string]control.PortAttachParams
	// umems are the UMEMs the afxdp ports share, so that frames go from
	// one to another by descriptor.
	umems *bpfport.UMEMGroup
}

// loaded is an installed program with everything it owns.
type loaded struct {
	id     uint64
	file   string
	name   string
	engine string
	coll   *loader.Collection
	prog   *vm.Program
	runner vm.Runner
	codes  []*jit.Code
	reused []string
}

// New returns a daemon with an empty switch.
func New(cfg Config) *Daemon {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Daemon{
		cfg:        cfg,
		log:        cfg.Logger,
		sw:         vswitch.New(vswitch.Config{Batch: cfg.Batch, Workers: cfg.Workers, BusyPoll: cfg.BusyPoll, Logger: cfg.Logger}),
		started:    time.Now(),
		kinds:      map[string]string{},
		xdp:        map[string]*bpfport.AFXDP{},
		umems:      bpfport.NewUMEMGroup(0),
		unrestored: map[string]string{},
	}
}

// Switch returns the daemon's switch.
func (d *Daemon) Switch() *vswitch.Switch { return d.sw }

// Close detaches every port (restoring their interfaces) and releases the
// program.
func (d *Daemon) Close() error {
	return d.sw.Close()
}

func bad(format string, args ...any) error {
	return control.Errorf(control.CodeBadRequest, format, args...)
}

// Handle implements control.Handler.
func (d *Daemon) Handle(ctx context.Context, method string, params json.RawMessage) (any, func(context.Context, io.Writer) error, error) {
	decode := func(v any) error {
		if len(params) == 0 {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(params))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return bad("%s: bad parameters: %v", method, err)
		}
		return nil
	}
	switch method {
	case control.MethodPing:
		return control.PingResult{Version: control.Version, PID: os.Getpid(), Started: d.started}, nil, nil
	case control.MethodPortAttach:
		var p control.PortAttachParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		r, err := d.Attach(p)
		return r, nil, err
	case control.MethodPortDetach:
		var p control.PortDetachParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		r, err := d.detach(p)
		return r, nil, err
	case control.MethodPortShow:
		var p control.PortShowParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		return control.PortShowResult{Ports: d.Ports(p.Stats)}, nil, nil
	case control.MethodProgLoad:
		var p control.ProgLoadParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		r, err := d.Load(p)
		return r, nil, err
	case control.MethodProgShow:
		r, err := d.ProgramInfo()
		return r, nil, err
	case control.MethodProgDump:
		var p control.ProgDumpParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		r, err := d.Dump(p.Kind)
		return r, nil, err
	case control.MethodProgLog:
		r, err := d.Log()
		return r, nil, err
	case control.MethodMapShow:
		r, err := d.MapShow()
		return r, nil, err
	case control.MethodMapDump, control.MethodMapLookup, control.MethodMapUpdate, control.MethodMapDelete:
		var p control.MapParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		r, err := d.MapOp(method, p)
		return r, nil, err
	case control.MethodFDBShow:
		r, err := d.FDB()
		return r, nil, err
	case control.MethodFDBFlush:
		return struct{}{}, nil, d.FDBFlush()
	case control.MethodFDBAdd:
		var p control.FDBAddParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		return struct{}{}, nil, d.FDBAdd(p)
	case control.MethodFDBDel:
		var p control.FDBDelParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		return struct{}{}, nil, d.FDBDel(p)
	case control.MethodStats:
		r, err := d.Stats()
		return r, nil, err
	case control.MethodCapture:
		var p control.CaptureParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		stream, err := d.Capture(p)
		return nil, stream, err
	case control.MethodRingbufRead:
		var p control.RingbufParams
		if err := decode(&p); err != nil {
			return nil, nil, err
		}
		r, stream, err := d.RingbufStream(p)
		return r, stream, err
	}
	return nil, nil, bad("unknown method %q", method)
}

// Attach opens and attaches a port. With a state directory, the port is
// recorded before Attach returns.
func (d *Daemon) Attach(p control.PortAttachParams) (control.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attachLocked(p, true)
}

func (d *Daemon) attachLocked(p control.PortAttachParams, record bool) (control.Port, error) {
	if p.Name == "" {
		return control.Port{}, bad("port attach: an interface name is required")
	}
	if len(p.Name) > 15 || strings.ContainsAny(p.Name, "/ \t\n") {
		return control.Port{}, bad("port attach: %q is not a valid interface name", p.Name)
	}
	if idx, err := d.sw.PortByName(p.Name); err == nil && (d.portGone(idx) || d.isNotRestored(p.Name)) {
		// The interface disappeared and is back (or the user wants to
		// retry): replace the dead port.
		d.log.Info("replacing a port whose interface had gone", "port", p.Name)
		d.sw.Detach(p.Name)
		d.setNotRestored(p.Name, "")
	}
	if idx, err := d.sw.PortByName(p.Name); err == nil {
		if p.MayExist {
			return d.portInfo(idx), nil
		}
		return control.Port{}, control.Errorf(control.CodeExists, "port %s is already attached (index %d): use --may-exist to accept that", p.Name, idx)
	}
	typ := p.Type
	if typ == "" {
		typ = "afpacket"
	}
	pc := vswitch.PortConfig{Kind: typ}
	if p.BusyPoll != "" {
		bp, err := ParseBusyPoll(p.BusyPoll)
		if err != nil {
			return control.Port{}, bad("port attach: %v", err)
		}
		pc.BusyPoll = bp
	} else if typ == "vxlan" {
		pc.BusyPoll = vxlanBusyPoll
	}
	if typ == "afpacket" && p.RingFrames != 0 && (p.RingFrames < 8 || p.RingFrames > bpfport.MaxRingFrames) {
		return control.Port{}, bad("port attach: --ring-size %d: want 8 to %d frames", p.RingFrames, bpfport.MaxRingFrames)
	}
	xdpCfg, err := afxdpConfig(typ, p)
	if err != nil {
		return control.Port{}, err
	}
	xdpCfg.Share = d.umems
	var port bpfport.Port
	var xp *bpfport.AFXDP
	open := func() error {
		var err error
		switch typ {
		case "afpacket":
			var a *bpfport.AFPacket
			a, err = bpfport.OpenAFPacket(p.Name, bpfport.AFPacketConfig{Queues: p.Queues, RingFrames: p.RingFrames})
			if err == nil {
				port = a
			}
		case "afxdp":
			xp, err = bpfport.OpenAFXDP(p.Name, xdpCfg)
			if err == nil {
				port = xp
			}
		case "tap":
			var t *bpfport.TAP
			t, err = bpfport.OpenTAP(p.Name, bpfport.TAPConfig{Queues: p.Queues, NoCreate: !p.Create})
			if err == nil {
				port = t
			}
		case "vxlan":
			port, err = d.openVXLAN(p)
		default:
			return bad("port attach: unknown type %q (afpacket, afxdp, tap or vxlan)", typ)
		}
		return err
	}
	if d.cfg.Netns != nil {
		err = d.cfg.Netns.Run(open)
	} else {
		err = open()
	}
	if err != nil {
		return control.Port{}, portError(err)
	}
	idx, err := d.sw.AttachPort(port, pc)
	if err != nil {
		port.Close()
		return control.Port{}, control.Errorf(control.CodeInvalid, "%v", err)
	}
	if record && d.state != nil {
		if err := d.state.putPort(idx, p); err != nil {
			d.sw.Detach(p.Name)
			return control.Port{}, control.Errorf(control.CodeInternal, "port attach %s: saving it in %s: %v: the port was not attached", p.Name, d.state.path, err)
		}
	}
	d.kinds[p.Name] = typ
	d.rememberVXLAN(typ, p)
	d.log.Info("port attached", "port", p.Name, "type", typ, "index", idx, "queues", port.NumQueues())
	if xp != nil {
		d.xdp[p.Name] = xp
		d.log.Info("AF_XDP port", "port", p.Name, "mode", xp.Info().String())
		for _, n := range xp.Info().Notes {
			d.log.Warn("AF_XDP port fall-back", "port", p.Name, "note", n)
		}
	}
	return d.portInfo(idx), nil
}

// afxdpConfig reads the afxdp settings of p (and refuses them for other
// port types).
func afxdpConfig(typ string, p control.PortAttachParams) (bpfport.AFXDPConfig, error) {
	var c bpfport.AFXDPConfig
	if typ != "afxdp" {
		if p.XDPMode != "" || p.ZeroCopy != "" {
			return c, bad("port attach: --xdp-mode and --zero-copy are for --type afxdp")
		}
		return c, nil
	}
	var err error
	if c.XDPMode, err = bpfport.ParseXDPMode(p.XDPMode); err != nil {
		return c, bad("port attach: --%v", err)
	}
	if c.ZeroCopy, err = bpfport.ParseZeroCopy(p.ZeroCopy); err != nil {
		return c, bad("port attach: --%v", err)
	}
	c.Queues = p.Queues
	c.RingSize = p.RingFrames
	return c, nil
}

// ParseBusyPoll reads a busy-poll window as the CLI and the protocol take
// it: a Go duration ("50us", "2ms"), "0" for none (returned as -1, the
// switch's "none").
func ParseBusyPoll(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("busy-poll %q: want a duration such as 50us or 2ms, or 0 for none", s)
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

// notRestored says why a saved port could not be attached again at start.
func (d *Daemon) notRestored(name string) (string, bool) {
	d.umu.Lock()
	defer d.umu.Unlock()
	why, ok := d.unrestored[name]
	return why, ok
}

func (d *Daemon) isNotRestored(name string) bool {
	_, ok := d.notRestored(name)
	return ok
}

// setNotRestored records why (or, with "", forgets) a saved port that
// could not be attached again.
func (d *Daemon) setNotRestored(name, why string) {
	d.umu.Lock()
	defer d.umu.Unlock()
	if why == "" {
		delete(d.unrestored, name)
	} else {
		d.unrestored[name] = why
	}
}

func (d *Daemon) portGone(idx int) bool {
	p, err := d.sw.PortInfo(idx)
	return err == nil && p.Gone
}

func portError(err error) error {
	var ce *control.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, bpfport.ErrNotFound):
		return control.Errorf(control.CodeNotFound, "%v", err)
	case errors.Is(err, bpfport.ErrInUse):
		return control.Errorf(control.CodeExists, "%v", err)
	case errors.Is(err, bpfport.ErrNotSupported):
		return control.Errorf(control.CodeUnsupported, "%v", err)
	}
	return control.Errorf(control.CodeInvalid, "%v", err)
}

// Detach removes a port. With IfExists, a port that is not attached is
// no error.
func (d *Daemon) Detach(p control.PortDetachParams) error {
	_, err := d.detach(p)
	return err
}

// detach is Detach whose result says whether the port was absent.
func (d *Daemon) detach(p control.PortDetachParams) (control.PortDetachResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.sw.Detach(p.Name)
	if errors.Is(err, vswitch.ErrNoSuchPort) {
		if p.IfExists {
			return control.PortDetachResult{Absent: true}, nil
		}
		return control.PortDetachResult{}, control.Errorf(control.CodeNotFound, "no port %s attached: see `vswitch port show` (or use --if-exists)", p.Name)
	}
	delete(d.kinds, p.Name)
	d.setNotRestored(p.Name, "")
	delete(d.xdp, p.Name)
	if err != nil {
		d.log.Warn("port detached with an error", "port", p.Name, "err", err)
	} else {
		d.log.Info("port detached", "port", p.Name)
	}
	if d.state != nil {
		if err := d.state.deletePort(p.Name); err != nil {
			return control.PortDetachResult{}, control.Errorf(control.CodeInternal, "port %s is detached, but %s could not be updated (%v): it will be attached again when the daemon restarts", p.Name, d.state.path, err)
		}
	}
	return control.PortDetachResult{}, nil
}

func (d *Daemon) portInfo(idx int) control.Port {
	p, err := d.sw.PortInfo(idx)
	if err != nil {
		return control.Port{Index: idx}
	}
	return d.controlPort(p, nil)
}

// Ports describes the attached ports.
func (d *Daemon) Ports(stats bool) []control.Port {
	var st map[int]vswitch.PortStats
	if stats {
		st = map[int]vswitch.PortStats{}
		for _, s := range d.sw.PortStats() {
			st[s.Index] = s
		}
	}
	var out []control.Port
	for _, p := range d.sw.Ports() {
		var ps *vswitch.PortStats
		if s, ok := st[p.Index]; ok {
			ps = &s
		}
		out = append(out, d.controlPort(p, ps))
	}
	return out
}

func (d *Daemon) controlPort(p vswitch.PortInfo, s *vswitch.PortStats) control.Port {
	bp := "0"
	if p.BusyPoll > 0 {
		bp = p.BusyPoll.String()
	}
	cp := control.Port{Index: p.Index, Name: p.Name, Type: p.Kind, Queues: p.Queues, MTU: p.MTU,
		Up: p.Up, Gone: p.Gone, Error: p.Error, Offload: p.Offload, BusyPoll: bp, Attached: p.Attached}
	if why, ok := d.notRestored(p.Name); ok {
		cp.Up, cp.Gone, cp.NotRestored = false, true, true
		cp.Error = "not restored at start: " + why + ": attach it again once the interface exists"
	}
	if s != nil {
		cp.Stats = &control.PortStats{RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets,
			TxBytes: s.TxBytes, Drops: s.DropsByName(), Port: portCounters(s.Port)}
		if pp, err := d.sw.Port(p.Index); err == nil {
			tunnelCounters(pp, cp.Stats.Port)
		}
	}
	if xp := d.xdp[p.Name]; xp != nil && d.kinds[p.Name] == "afxdp" {
		info := xp.Info()
		cp.XDP, cp.Notes = info.String(), info.Notes
	}
	return cp
}

func portCounters(s bpfport.Stats) map[string]uint64 {
	m := map[string]uint64{
		"rx_packets": s.RxPackets, "rx_bytes": s.RxBytes, "tx_packets": s.TxPackets, "tx_bytes": s.TxBytes,
		"rx_oversize": s.RxOversize, "rx_kernel_drops": s.RxKernelDrops, "rx_bad_offload": s.RxBadOffload,
		"rx_offload": s.RxOffload, "tx_segmented": s.TxSegmented, "tx_oversize": s.TxOversize, "tx_ring_full": s.TxRingFull, "tx_errors": s.TxErrors,
	}
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
}

// LoadDefault installs the built-in learning program. It is not recorded
// in the state: a daemon whose state holds no program starts with it.
func (d *Daemon) LoadDefault(engine string) (control.Program, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loadDefaultLocked(engine)
}

// Load loads an object and installs its program, keeping the maps it
// shares by name with the installed program. With a state directory, the
// object is recorded before Load returns, and the recorded changes of the
// maps not kept are forgotten.
func (d *Daemon) Load(p control.ProgLoadParams) (control.Program, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loadLocked(p, true)
}

func (d *Daemon) loadLocked(p control.ProgLoadParams, record bool) (control.Program, error) {
	if len(p.Object) == 0 {
		return control.Program{}, bad("prog load: empty object")
	}
	engine := p.Engine
	if engine == "" {
		engine = "jit"
		if runtime.GOARCH != "amd64" {
			engine = "interp"
		}
	}
	if engine != "jit" && engine != "interp" {
		return control.Program{}, bad("prog load: unknown engine %q (jit or interp)", engine)
	}
	opts := loader.Options{CPUs: d.sw.Workers()}
	if p.Section != "" {
		// Only the program named (and what its program arrays reach): the
		// object's other programs need not be runnable here.
		opts.Programs = []string{p.Section}
	}
	switch p.Compat {
	case "", "none":
	case "vale-bpf":
		opts.Compat = loader.CompatVALEBPF
	default:
		return control.Program{}, bad("prog load: unknown compatibility mode %q (vale-bpf)", p.Compat)
	}
	base := filepath.Base(p.File)
	if i := strings.IndexByte(base, '.'); i > 0 {
		opts.ObjectName = base[:i]
	}
	old := d.prog
	if old != nil {
		opts.ReuseMaps = map[string]maps.Map{}
		for name, m := range old.coll.Maps {
			// Global data belongs to its object; so do the programs in a
			// program array, whose code goes with the replaced object.
			if !isGlobalData(name) && m.Spec().Type != maps.ProgArray {
				opts.ReuseMaps[name] = m
			}
		}
	}
	coll, err := loader.LoadReader(bytes.NewReader(p.Object), opts)
	if err != nil {
		return control.Program{}, control.Errorf(control.CodeInvalid, "prog load %s: %v", p.File, err)
	}
	prog, name, err := PickProgram(coll, p.Section, opts.ObjectName)
	if err != nil {
		coll.Close()
		return control.Program{}, control.Errorf(control.CodeInvalid, "prog load %s: %v", p.File, err)
	}
	l := &loaded{file: p.File, name: name, engine: engine, coll: coll, prog: prog, runner: prog}
	if engine == "jit" {
		// Every program of the object is compiled, so that tail calls
		// stay in machine code.
		for _, n := range coll.ProgramNames() {
			cp := coll.Programs[n]
			code, err := jit.Compile(cp)
			if err != nil {
				l.closeCodes()
				coll.Close()
				return control.Program{}, control.Errorf(control.CodeUnsupported, "prog load %s: %v: use --engine interp", p.File, err)
			}
			cp.Native.Store(&vm.Native{Runner: code, Size: code.Size()})
			l.codes = append(l.codes, code)
			if cp == prog {
				l.runner = code
			}
		}
	}
	var dropped []string
	if old != nil {
		for name, m := range coll.Maps {
			if om, ok := old.coll.Maps[name]; ok && om == m {
				l.reused = append(l.reused, name)
			}
		}
		sort.Strings(l.reused)
		for name, om := range old.coll.Maps {
			if coll.Maps[name] != om {
				dropped = append(dropped, name)
			}
		}
	}
	setResolvers(coll)
	// Control-plane map writes wait while the program changes: each is
	// recorded against the program whose map it changed (progGen).
	d.mapMu.Lock()
	defer d.mapMu.Unlock()
	if record && d.state != nil {
		if err := d.state.putProgram(p, dropped); err != nil {
			l.closeCodes()
			coll.Close()
			return control.Program{}, control.Errorf(control.CodeInternal, "prog load %s: saving it in %s: %v: the program was not installed", p.File, d.state.path, err)
		}
	}
	sp := &vswitch.Program{Name: name, Engine: engine, Runner: l.runner, VM: prog, Close: func() { d.release(l) }}
	if fm, ok := coll.Maps["vswitch_flood"]; ok {
		sp.FloodMap = fm
	}
	d.sw.SetProgram(sp)
	l.id = d.sw.ProgramID()
	d.prog = l
	d.progGen.Add(1)
	if record && d.state != nil {
		d.fallback = false // the state's program is this one now
	}
	d.log.Info("program installed", "file", p.File, "program", name, "engine", engine,
		"instructions", len(prog.Instructions()), "reused_maps", strings.Join(l.reused, ","))
	info := d.programInfo()
	return info, nil
}

// release closes a replaced program's machine code and the maps the
// installed program does not use. The switch calls it once no worker runs
// the program any more.
func (d *Daemon) release(l *loaded) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l.closeCodes()
	var keep map[string]maps.Map
	if d.prog != nil && d.prog != l {
		keep = d.prog.coll.Maps
	}
	for name, m := range l.coll.Maps {
		if k, ok := keep[name]; ok && k == m {
			continue
		}
		m.Close()
	}
}

func (l *loaded) closeCodes() {
	for _, c := range l.codes {
		c.Close()
	}
	l.codes = nil
}

func isReadOnlyData(name string) bool {
	return strings.HasSuffix(name, ".rodata") || strings.Contains(name, ".rodata.")
}

func isGlobalData(name string) bool {
	for _, s := range []string{".data", ".rodata", ".bss"} {
		if strings.HasSuffix(name, s) || strings.Contains(name, s+".") {
			return true
		}
	}
	return false
}

// PickProgram chooses the program to install: the one named (by function
// or section), the only one, or the one named like the object.
func PickProgram(c *loader.Collection, want, object string) (*vm.Program, string, error) {
	if want != "" {
		p, err := c.Program(want)
		if err != nil {
			return nil, "", err
		}
		for n, q := range c.Programs {
			if q == p {
				return p, n, nil
			}
		}
	}
	names := c.ProgramNames()
	switch {
	case len(names) == 1:
		return c.Programs[names[0]], names[0], nil
	case c.Programs[object] != nil:
		return c.Programs[object], object, nil
	case len(names) == 0:
		return nil, "", errors.New("the object holds no program")
	}
	return nil, "", fmt.Errorf("the object holds several programs (%s): choose one with --section", strings.Join(names, ", "))
}

func (d *Daemon) current() (*loaded, error) {
	if d.prog == nil {
		return nil, control.Errorf(control.CodeNotFound, "no program loaded: load one with `vswitch prog load FILE.o`")
	}
	return d.prog, nil
}

// ProgramInfo describes the installed program.
func (d *Daemon) ProgramInfo() (control.Program, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.current(); err != nil {
		return control.Program{}, err
	}
	return d.programInfo(), nil
}

func (d *Daemon) programInfo() control.Program {
	l := d.prog
	info := control.Program{ID: l.id, Name: l.name, File: l.file, Engine: l.engine,
		Instructions: len(l.prog.Instructions()), Reused: l.reused}
	for _, c := range l.codes {
		if c.Program() == l.prog {
			info.JitedBytes = c.Size()
		}
	}
	for n := range l.coll.Maps {
		info.Maps = append(info.Maps, n)
	}
	sort.Strings(info.Maps)
	if st, ok := d.sw.ProgramStats(); ok {
		info.Runs, info.Executed, info.Faults, info.Loaded = st.Runs, st.Instructions, st.Faults, st.Loaded
		if len(st.FaultsByKind) > 0 {
			info.FaultsByKind = st.FaultsByKind
		}
	}
	return info
}

// Dump prints the program as our disassembly (xlated) or as x86 code
// interleaved with the instructions it came from (jited).
func (d *Daemon) Dump(kind string) (control.TextResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.current()
	if err != nil {
		return control.TextResult{}, err
	}
	switch kind {
	case "xlated", "":
		return control.TextResult{Text: Xlated(l.prog, l.coll.Lines[l.name])}, nil
	case "jited":
		for _, c := range l.codes {
			if c.Program() == l.prog {
				listing := c.Listing()
				listing.MapNames = MapNames(l.prog)
				listing.Source = sourceLines(l.coll.Lines[l.name])
				return control.TextResult{Text: listing.String()}, nil
			}
		}
		return control.TextResult{}, control.Errorf(control.CodeUnsupported, "program %s runs on the interpreter: there is no machine code (load it with --engine jit)", l.name)
	}
	return control.TextResult{}, bad("prog dump: unknown kind %q (xlated or jited)", kind)
}

// Xlated returns a program's disassembly, one instruction per line with
// its slot index, maps by name and, where lines (by slot, from
// loader.Collection.Lines) has them, the C source lines above the
// instructions they start, as bpftool prints them.
func Xlated(p *vm.Program, lines []loader.Line) string {
	var b strings.Builder
	src := sourceLines(lines)
	slot := 0
	for _, line := range asmLines(p.Instructions(), MapNames(p)) {
		if slot < len(src) && src[slot] != "" {
			fmt.Fprintf(&b, "; %s\n", src[slot])
		}
		fmt.Fprintf(&b, "%5d: %s\n", slot, line.text)
		slot += line.slots
	}
	return b.String()
}

// MapNames names p's maps by the index lddw map[N] uses.
func MapNames(p *vm.Program) []string {
	var names []string
	for _, m := range p.Maps() {
		name := ""
		if s, ok := m.(interface{ Spec() maps.Spec }); ok {
			name = s.Spec().Name
		}
		names = append(names, name)
	}
	return names
}

// sourceLines renders line info by slot as "file.c:12: text", leaving
// out a line that repeats the one before it.
func sourceLines(lines []loader.Line) []string {
	if lines == nil {
		return nil
	}
	out := make([]string, len(lines))
	var prev loader.Line
	for pc, l := range lines {
		if l.Text == "" || l == prev {
			continue
		}
		out[pc] = fmt.Sprintf("%s:%d: %s", filepath.Base(l.File), l.Number, l.Text)
		prev = l
	}
	return out
}

// Log returns the program's trace_printk lines.
func (d *Daemon) Log() (control.LogResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.current()
	if err != nil {
		return control.LogResult{}, err
	}
	lines, dropped := traceLines(l.prog)
	return control.LogResult{Lines: lines, Dropped: dropped}, nil
}

// Stats returns every counter.
func (d *Daemon) Stats() (control.StatsResult, error) {
	r := control.StatsResult{Ports: d.Ports(true)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.prog != nil {
		info := d.programInfo()
		r.Program = &info
	}
	return r, nil
}

// FDB decodes the learning program's forwarding database.
func (d *Daemon) FDB() (control.FDBResult, error) {
	m, err := d.fdbMap()
	if err != nil {
		return control.FDBResult{}, err
	}
	names := map[int]string{}
	for _, p := range d.sw.Ports() {
		names[p.Index] = p.Name
	}
	now := vm.Ktime()
	res := control.FDBResult{Entries: []control.FDBEntry{}}
	each(m, func(key, v []byte) {
		port := int(binary.NativeEndian.Uint32(v[0:]))
		seen := binary.NativeEndian.Uint64(v[8:])
		age := 0.0
		if now > seen {
			age = float64(now-seen) / 1e9
		}
		res.Entries = append(res.Entries, control.FDBEntry{MAC: net.HardwareAddr(key).String(), Port: port, PortName: names[port], Age: age})
	})
	sort.Slice(res.Entries, func(i, j int) bool { return res.Entries[i].MAC < res.Entries[j].MAC })
	d.annotateFDB(&res)
	return res, nil
}

// FDBFlush forgets every learned address (and those set through the
// control plane: the flush is recorded in the state). Static entries of
// VXLAN ports stay.
func (d *Daemon) FDBFlush() error {
	m, err := d.fdbMap()
	if err != nil {
		return err
	}
	d.mapMu.Lock()
	defer d.mapMu.Unlock()
	clearMap(m)
	d.flushVXLAN(m)
	return d.record(mapChange{Op: "clear", Map: "fdb"})
}

// clearMap deletes every entry of m.
func clearMap(m maps.Map) {
	var keys [][]byte
	each(m, func(k, _ []byte) { keys = append(keys, k) })
	for _, k := range keys {
		m.Delete(k)
	}
}

func (d *Daemon) fdbMap() (maps.Map, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.current()
	if err != nil {
		return nil, err
	}
	m, ok := l.coll.Maps["fdb"]
	if !ok {
		return nil, control.Errorf(control.CodeNotFound, "program %s has no fdb map: `fdb` works with the learning program (examples/learn.o); use `vswitch map dump NAME` for other maps", l.name)
	}
	if s := m.Spec(); s.KeySize != 6 || s.ValueSize < 16 {
		return nil, control.Errorf(control.CodeInvalid, "map fdb has key size %d and value size %d, not the learning program's layout (6, 16)", s.KeySize, s.ValueSize)
	}
	return m, nil
}
