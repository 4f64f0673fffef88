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

	// Region 0 is the main program's stack: ProgramStackSize below the
	// top of the StackSize bytes of the env's stack.
	floor := env.StackTop() - vm.ProgramStackSize
	if tbl := env.RegionTable(); len(*tbl) < 3 || (*tbl)[0].Start != floor || (*tbl)[0].Size != vm.ProgramStackSize || env.StackFloor() != floor {
		t.Errorf("RegionTable()[0] = %+v, StackFloor %#x, want the stack at %#x", (*tbl)[0], env.StackFloor(), floor)
	}
	if env.StackBase()+vm.StackSize != env.StackTop() || len(env.Stack()) != vm.StackSize {
		t.Error("StackBase + StackSize != StackTop")
	}
	env.SetStackFloor(env.StackBase())
	if r := (*env.RegionTable())[0]; r.Start != env.StackBase() || r.Size != vm.StackSize {
		t.Errorf("after SetStackFloor(StackBase), region 0 is %+v", r)
	}
	env.ResetStack()
	if env.StackFloor() != floor {
		t.Error("ResetStack does not put the floor back under the main frame")
	}
	for _, bad := range []uint64{env.StackBase() - 8, env.StackTop() - vm.ProgramStackSize + 8} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SetStackFloor(%#x) outside the stack does not panic", bad)
				}
			}()
			env.SetStackFloor(bad)
		}()
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
