package vm_test

import (
	"errors"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// TestEngineHooks checks the hooks external engines use against what the
// interpreter does itself.
func TestEngineHooks(t *testing.T) {
	p := vm.MustLoad(asm.MustAssemble("ldxdw %r0, [%r1+0]\nexit"), vm.Options{Helpers: vm.BaseHelpers()})
	env := vm.NewEnv()
	_, err := p.Run(env, 8, 0)
	var want *vm.Error
	if !errors.As(err, &want) {
		t.Fatalf("interpreter: %v", err)
	}
	wantExecuted := env.Executed

	env.BeginRun(p)
	got := env.Fault(vm.KindRead, 0, wantExecuted)
	got.Addr, got.Size = 8, 8
	if *got != *want || env.Executed != wantExecuted {
		t.Errorf("Fault: got %+v (executed %d), want %+v (executed %d)", *got, env.Executed, *want, wantExecuted)
	}

	if tbl := env.RegionTable(); len(*tbl) < 3 || (*tbl)[0].Start != env.StackBase() || (*tbl)[0].Size != vm.StackSize {
		t.Errorf("RegionTable()[0] = %+v, want the stack at %#x", (*tbl)[0], env.StackBase())
	}
	if env.StackBase()+vm.StackSize != env.StackTop() {
		t.Error("StackBase + StackSize != StackTop")
	}

	if p.HelperFunc(vm.HelperGetSmpProcessorID) == nil || p.HelperFunc(1<<40) != nil || p.HelperFunc(0) != nil {
		t.Error("HelperFunc")
	}

	if !env.TailCall(p) || env.TakeTailCall() != p || env.TakeTailCall() != nil {
		t.Error("TakeTailCall does not return and clear the request")
	}
	env.BeginRun(p)
	if env.TakeTailCall() != nil {
		t.Error("BeginRun does not clear a pending tail call")
	}
}
