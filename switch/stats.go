package vswitch

import (
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/vm"
)

// PortStats are the counters of one port.
type PortStats struct {
	Index     int
	Name      string
	RxPackets uint64 // frames received by the switch from this port
	RxBytes   uint64
	TxPackets uint64 // frames the switch sent out of this port
	TxBytes   uint64
	// Drops of frames received on this port, by reason; Drops[DropTxFull]
	// counts frames this port refused to send.
	Drops [NumDropReasons]uint64
	// Port holds the port's own counters (ring drops, oversize, offload).
	Port bpfport.Stats
}

// DropsByName returns the non-zero drop counters by reason name.
func (p PortStats) DropsByName() map[string]uint64 {
	m := map[string]uint64{}
	for r, n := range p.Drops {
		if n != 0 {
			m[DropReason(r).String()] = n
		}
	}
	return m
}

// ProgramStats are the counters of the installed program since it was
// installed.
type ProgramStats struct {
	ID           uint64
	Name         string
	Engine       string
	Loaded       time.Time
	Runs         uint64
	Instructions uint64 // instruction slots executed
	Faults       uint64
	FaultsByKind map[string]uint64
}

// PortStats sums the counters of every attached port.
func (s *Switch) PortStats() []PortStats {
	var out []PortStats
	for _, p := range s.allPorts() {
		st := PortStats{Index: p.idx, Name: p.name, Port: p.p.Stats()}
		for i := range p.rx {
			rx := &p.rx[i]
			st.RxPackets += rx.packets.Load()
			st.RxBytes += rx.bytes.Load()
			for r := range st.Drops {
				st.Drops[r] += rx.drops[r].Load()
			}
		}
		for _, w := range s.workers {
			t := &w.tx[p.idx]
			st.TxPackets += t.packets.Load()
			st.TxBytes += t.bytes.Load()
			st.Drops[DropTxFull] += t.dropped.Load()
		}
		st.TxPackets -= p.txBase.packets.Load()
		st.TxBytes -= p.txBase.bytes.Load()
		st.Drops[DropTxFull] -= p.txBase.dropped.Load()
		out = append(out, st)
	}
	return out
}

// ProgramStats returns the counters of the installed program; ok is false
// when none is installed.
func (s *Switch) ProgramStats() (ProgramStats, bool) {
	in := s.prog.Load()
	if in == nil {
		return ProgramStats{}, false
	}
	st := ProgramStats{ID: in.id, Name: in.prog.Name, Engine: in.prog.Engine, Loaded: in.loaded,
		FaultsByKind: map[string]uint64{}}
	for i := range in.counters {
		c := &in.counters[i]
		st.Runs += c.runs.Load()
		st.Instructions += c.insns.Load()
		for k := range c.faults {
			if n := c.faults[k].Load(); n != 0 {
				st.Faults += n
				st.FaultsByKind[vm.Kind(k).String()] += n
			}
		}
	}
	return st, true
}
