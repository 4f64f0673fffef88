// Package switchtest drives virtual ports of a switch core with pktgen. It
// is a package of its own so that pktgen's tests do not depend on the
// switch and the VM building.
package switchtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/bench/pktgen"
	"github.com/govswitch/vswitch/bpfport"
	vswitch "github.com/govswitch/vswitch/switch"
	"github.com/govswitch/vswitch/vm"
)

// TestThroughSwitch drives virtual ports attached to a switch in this
// process: generator -> port 0 -> program (forward to port 1) -> port 1 ->
// sink.
func TestThroughSwitch(t *testing.T) {
	p, err := vm.Load(asm.MustAssemble("mov %r0, 1\nexit"), vm.Options{Helpers: vm.BaseHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	sw := vswitch.New(vswitch.Config{})
	defer sw.Close()
	sw.SetProgram(&vswitch.Program{Name: "to1", Engine: "interp", Runner: p, VM: p})
	cfg := bpfport.VirtualConfig{RingSize: 4096}
	gen, in := bpfport.NewVirtualPair("gen", "sw-in", cfg)
	out, sink := bpfport.NewVirtualPair("sw-out", "sink", cfg)
	defer gen.Close()
	defer sink.Close()
	if _, err := sw.Attach(in, "virtual"); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Attach(out, "virtual"); err != nil {
		t.Fatal(err)
	}
	const n = 50_000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rx pktgen.Summary
	var rxErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rx, rxErr = pktgen.Run(ctx, sink, pktgen.Config{Mode: pktgen.Receive, Count: n}, nil)
	}()
	tx, err := pktgen.Run(ctx, gen, pktgen.Config{Count: n, Flows: 8, Rate: 100_000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if rxErr != nil {
		t.Fatal(rxErr)
	}
	if tx.Packets != n || rx.Packets != n || rx.Lost != 0 || rx.Duplicates != 0 || rx.Reordered != 0 || rx.Flows != 8 {
		t.Errorf("\ntx %+v\nrx %+v", tx, rx)
	}
	if rx.Latency == nil || rx.Latency.Samples != n {
		t.Errorf("latency %+v", rx.Latency)
	}
	t.Logf("%v", rx)
}
