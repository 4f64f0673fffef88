package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/examples"
	"github.com/govswitch/vswitch/maps"
)

// restore brings the daemon to its saved state combined with the
// declarative configuration (docs/state.md):
//
//  1. the program: the configuration's, else the saved one, else (unless
//     noDefault) the built-in learning program;
//  2. the maps: the snapshot of the last clean shutdown, then every
//     recorded control-plane change in order, into the maps of that
//     program with the same name;
//  3. the saved ports, each at its saved index; one that cannot be
//     attached again is reported (log, `port show`) and keeps its index;
//  4. the configuration's ports: attached, or re-attached with the
//     configuration's parameters where they differ from the saved ones.
//
// Only a configuration that cannot be applied is an error.
func (d *Daemon) restore(sv *saved, fc *FileConfig, noDefault bool, engine string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if sv == nil {
		sv = &saved{}
	}
	if !sv.empty() {
		d.log.Info("restoring the saved state", "ports", len(sv.ports), "program", sv.program != nil,
			"map_changes", len(sv.log), "snapshot_maps", len(sv.snapshot))
	}
	fromState := false
	switch {
	case fc.Program != nil:
		obj, err := os.ReadFile(fc.Program.File)
		if err != nil {
			return fmt.Errorf("config: program: %w", err)
		}
		if _, err := d.loadLocked(control.ProgLoadParams{Object: obj, File: fc.Program.File, Section: fc.Program.Section,
			Engine: fc.Program.Engine, Compat: fc.Program.Compat}, true); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		fromState = true // and now recorded
	case sv.program != nil:
		if _, err := d.loadLocked(*sv.program, false); err != nil {
			d.fallback = true
			d.log.Error("the saved program could not be installed again: its saved map changes are kept but not applied; load a program with `vswitch prog load`",
				"file", sv.program.File, "err", err)
			break
		}
		fromState = true
	}
	if d.prog == nil && !noDefault {
		if _, err := d.loadDefaultLocked(engine); err != nil {
			return fmt.Errorf("default program: %w", err)
		}
		fromState = !d.fallback
	}
	if d.prog != nil && fromState {
		d.restoreMaps(sv)
	}

	// Ports at their saved indices; holes between them are held by
	// placeholders until every port has its index.
	savedParams := map[string]control.PortAttachParams{}
	var holes []string
	next := 0
	for _, sp := range sv.ports {
		var p control.PortAttachParams
		json.Unmarshal(sp.Params, &p) // checked when read
		for ; next < sp.Index; next++ {
			name := fmt.Sprintf("(hole %d)", next)
			ph, err := newPlaceholder(name, nil)
			if err == nil {
				_, err = d.sw.Attach(ph, "hole")
			}
			if err != nil {
				return fmt.Errorf("restoring port indices: %w", err)
			}
			holes = append(holes, name)
		}
		next = sp.Index + 1
		savedParams[p.Name] = p
		info, err := d.attachLocked(p, false)
		if err != nil {
			why := err.Error()
			d.log.Warn("saved port not restored: it keeps its index; attach it again once the interface exists", "port", p.Name, "index", sp.Index, "err", why)
			kind := p.Type
			if kind == "" {
				kind = "afpacket"
			}
			ph, err := newPlaceholder(p.Name, fmt.Errorf("%w: not restored at start: %s", bpfport.ErrLinkGone, why))
			if err == nil {
				_, err = d.sw.Attach(ph, kind)
			}
			if err != nil {
				return fmt.Errorf("restoring port %s: %w", p.Name, err)
			}
			d.setNotRestored(p.Name, why)
			continue
		}
		if info.Index != sp.Index {
			d.log.Warn("saved port restored at another index", "port", p.Name, "saved_index", sp.Index, "index", info.Index)
		}
	}
	for _, p := range fc.Ports {
		if _, err := d.sw.PortByName(p.Name); err == nil && !d.isNotRestored(p.Name) {
			if old, ok := savedParams[p.Name]; ok && sameParams(old, p) {
				continue
			}
			d.log.Info("attaching a port again with the configuration's parameters", "port", p.Name)
			d.sw.Detach(p.Name)
		}
		if _, err := d.attachLocked(p, true); err != nil {
			return fmt.Errorf("config: port %s: %w", p.Name, err)
		}
	}
	for _, h := range holes {
		d.sw.Detach(h)
	}
	d.umu.Lock()
	var names []string
	for n := range d.unrestored {
		names = append(names, n)
	}
	d.umu.Unlock()
	if len(names) > 0 {
		sort.Strings(names)
		d.log.Warn("some saved ports were not restored (see `vswitch port show`)", "ports", strings.Join(names, ","))
	}
	return nil
}

func sameParams(a, b control.PortAttachParams) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// restoreMaps applies the snapshot, then the change log, to the installed
// program's maps. What cannot be applied is logged and skipped.
func (d *Daemon) restoreMaps(sv *saved) {
	coll := d.prog.coll
	var names []string
	for n := range sv.snapshot {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		sm := sv.snapshot[name]
		m, ok := coll.Maps[name]
		if !ok {
			d.log.Warn("map snapshot not restored: the program has no such map", "map", name, "entries", len(sm.entries))
			continue
		}
		if specOf(m) != sm.spec {
			d.log.Warn("map snapshot not restored: the map's layout changed", "map", name, "saved", sm.spec, "now", specOf(m))
			continue
		}
		failed := 0
		var first error
		for _, e := range sm.entries {
			if err := m.Update(e.key, e.value, maps.UpdateAny); err != nil {
				failed++
				first = cmpErr(first, err)
			}
		}
		if failed > 0 {
			d.log.Warn("map snapshot partly restored", "map", name, "entries", len(sm.entries)-failed, "failed", failed, "err", first)
		} else {
			d.log.Info("map restored from the shutdown snapshot", "map", name, "entries", len(sm.entries))
		}
	}
	missing := map[string]int{}
	failed := map[string]int{}
	var first error
	for _, c := range sv.log {
		m, ok := coll.Maps[c.Map]
		if !ok {
			missing[c.Map]++
			continue
		}
		var err error
		switch c.Op {
		case "update":
			if c.Program != "" {
				pa, ok := m.(*maps.ProgramArray)
				if !ok {
					err = fmt.Errorf("not a program array")
					break
				}
				err = setProgSlot(coll, pa, c.Key, c.Program)
			} else {
				err = m.Update(c.Key, c.Value, maps.UpdateAny)
			}
		case "delete":
			if err = m.Delete(c.Key); errors.Is(err, maps.ErrKeyNotExist) {
				err = nil
			}
		case "clear":
			clearMap(m)
		default:
			err = fmt.Errorf("unknown change %q", c.Op)
		}
		if err != nil {
			failed[c.Map]++
			first = cmpErr(first, fmt.Errorf("map %s: %s: %w", c.Map, c.Op, err))
		}
	}
	if len(sv.log) > 0 {
		d.log.Info("recorded map changes applied", "changes", len(sv.log))
	}
	if len(failed) > 0 {
		d.log.Warn("some recorded map changes could not be applied", "failed", failed, "first_err", first)
	}
	if len(missing) > 0 {
		// The installed program is the recorded one: changes of maps it
		// does not have can never apply again.
		var names []string
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		d.log.Warn("recorded changes of maps the program does not have are forgotten", "maps", strings.Join(names, ","))
		if d.state != nil {
			if err := d.state.dropMaps(names); err != nil {
				d.log.Warn("forgetting changes of missing maps", "err", err)
			}
		}
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (d *Daemon) loadDefaultLocked(engine string) (control.Program, error) {
	obj, err := examples.Object(examples.Default)
	if err != nil {
		return control.Program{}, err
	}
	// Not recorded: a state without a program starts with the default.
	return d.loadLocked(control.ProgLoadParams{Object: obj, File: examples.Default + ".o", Engine: engine}, false)
}

// SaveSnapshot records the contents of the installed program's maps
// (learned addresses, counters) in the state, superseding the recorded
// changes of those maps; Run calls it on a clean shutdown. It does
// nothing without a state directory, or when the saved program could not
// be installed at start (its saved state stays as it was).
func (d *Daemon) SaveSnapshot() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil || d.prog == nil || d.fallback {
		return nil
	}
	d.mapMu.Lock()
	defer d.mapMu.Unlock()
	ms := map[string]maps.Map{}
	for name, m := range d.prog.coll.Maps {
		if snapshotted(name, m) {
			ms[name] = m
		}
	}
	n, err := d.state.snapshot(ms)
	if err != nil {
		return fmt.Errorf("snapshot of the maps in %s: %w", d.state.path, err)
	}
	d.log.Info("maps saved for the next start", "maps", len(ms), "entries", n)
	return nil
}

// placeholder holds an index: of a saved port that could not be attached
// again (gone set: it polls ready at once and reports the link gone, so
// the switch takes it out of forwarding), or of a hole between saved ports
// while they are restored. It never receives and drops what it is sent.
// Its poll descriptor is the read end of a pipe.
type placeholder struct {
	name   string
	gone   error
	r, w   *os.File
	fd     int
	once   sync.Once
	closed chan struct{}
}

func newPlaceholder(name string, gone error) (*placeholder, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("placeholder for port %s: %w", name, err)
	}
	p := &placeholder{name: name, gone: gone, r: r, w: w, fd: int(r.Fd()), closed: make(chan struct{})}
	if gone != nil {
		w.Write([]byte{1}) // readable: the switch looks at once
	}
	return p, nil
}

func (p *placeholder) Name() string   { return p.name }
func (p *placeholder) NumQueues() int { return 1 }
func (p *placeholder) RecvBatch(q int, b *bpfport.Batch) (int, error) {
	if n, err := p.TryRecv(q, b); n > 0 || err != nil {
		return n, err
	}
	<-p.closed
	return 0, bpfport.ErrClosed
}
func (p *placeholder) TryRecv(q int, b *bpfport.Batch) (int, error) {
	select {
	case <-p.closed:
		return 0, bpfport.ErrClosed
	default:
	}
	if p.gone != nil {
		return 0, p.gone
	}
	return 0, nil
}
func (p *placeholder) PollFD(q int) int { return p.fd }
func (p *placeholder) Release(q int)    {}
func (p *placeholder) Arm(q int) bool   { return true }
func (p *placeholder) SendBatch(q int, frames [][]byte, offl []bpfport.Offload) (int, error) {
	return len(frames), nil // dropped
}
func (p *placeholder) Caps() bpfport.Caps   { return 0 }
func (p *placeholder) Wake()                {}
func (p *placeholder) MTU() int             { return 1500 }
func (p *placeholder) Up() bool             { return false }
func (p *placeholder) Stats() bpfport.Stats { return bpfport.Stats{} }
func (p *placeholder) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.w.Close()
		p.r.Close()
	})
	return nil
}
