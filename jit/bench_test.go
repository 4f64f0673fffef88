package jit_test

import (
	"runtime"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/testprogs"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// The benchmarks run the same program on the interpreter, the JIT and (as
// root) the kernel's JIT through BPF_PROG_TEST_RUN, in one run, so that
// the figures compare. Each reports ns/run and ns/insn (wall time) and,
// for our engines, cpu-ns/run and cpu-ns/insn (this thread's CPU time,
// which other work on a shared machine does not inflate); the kernel's
// come from the duration it measures itself over b.N repetitions (which
// excludes the system call and the XDP dispatcher setup), so for the
// kernel only ns/run and ns/insn mean anything.
//
//	go test ./jit/ -run '^$' -bench . -benchtime 2s -count 3

func benchEngines(b *testing.B, insns, kernelInsns []asm.Instruction, executed int, frame []byte) {
	p := vm.MustLoad(insns, vm.Options{})
	if frame == nil {
		frame = make([]byte, 64)
	}
	run := func(b *testing.B, r vm.Runner) {
		env := vm.NewEnv()
		want, err := env.RunFrame(p, append([]byte(nil), frame...), 0)
		if err != nil {
			b.Fatal(err)
		}
		f := append([]byte(nil), frame...)
		got, err := env.RunFrame(r, f, 0)
		if err != nil || got != want {
			b.Fatalf("got %#x, %v; the interpreter says %#x", got, err, want)
		}
		if env.Executed != uint64(executed) {
			b.Fatalf("executed %d instruction slots, want %d", env.Executed, executed)
		}
		b.ReportAllocs()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ResetTimer()
		cpu0 := testprogs.ThreadCPU()
		for b.Loop() {
			env.RunFrame(r, f, 0)
		}
		cpu := float64((testprogs.ThreadCPU() - cpu0).Nanoseconds()) / float64(b.N)
		ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(ns, "ns/run")
		b.ReportMetric(ns/float64(executed), "ns/insn")
		b.ReportMetric(cpu, "cpu-ns/run")
		b.ReportMetric(cpu/float64(executed), "cpu-ns/insn")
	}
	// batch measures per frame in batches of 64 frames (RunFrames, as the
	// switch runs programs), repeat per run of RunRepeat (as `prog run
	// --repeat` and the kernel's test run measure).
	batch := func(b *testing.B, r vm.Runner, repeat bool) {
		env := vm.NewEnv()
		frames := make([][]byte, 64)
		for k := range frames {
			frames[k] = append([]byte(nil), frame...)
		}
		res := make([]vm.FrameResult, len(frames))
		env.RunFrames(r, frames, 0, res)
		if res[0].Failed() || res[0].Executed != uint64(executed) {
			b.Fatalf("batch: %v, executed %d", res[0].Err(), res[0].Executed)
		}
		b.ReportAllocs()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		n := 0
		b.ResetTimer()
		cpu0 := testprogs.ThreadCPU()
		for b.Loop() {
			if repeat {
				// Many repetitions a call, as prog run --repeat makes: the
				// call reads the thread's CPU clock twice (system calls).
				env.RunRepeat(r, frames[0], 0, 4096)
				n += 4096
			} else {
				env.RunFrames(r, frames, 0, res)
				n += 64
			}
		}
		cpu := float64((testprogs.ThreadCPU() - cpu0).Nanoseconds()) / float64(n)
		ns := float64(b.Elapsed().Nanoseconds()) / float64(n)
		b.ReportMetric(ns, "ns/run")
		b.ReportMetric(ns/float64(executed), "ns/insn")
		b.ReportMetric(cpu, "cpu-ns/run")
		b.ReportMetric(cpu/float64(executed), "cpu-ns/insn")
	}
	b.Run("interp", func(b *testing.B) { run(b, p) })
	b.Run("interp-batch", func(b *testing.B) { batch(b, p, false) })
	compiled := func(b *testing.B, f func(*testing.B, *jit.Code)) {
		c, err := jit.Compile(p)
		if err != nil {
			b.Skip(err)
		}
		defer c.Close()
		f(b, c)
	}
	b.Run("jit", func(b *testing.B) { compiled(b, func(b *testing.B, c *jit.Code) { run(b, c) }) })
	b.Run("jit-batch", func(b *testing.B) { compiled(b, func(b *testing.B, c *jit.Code) { batch(b, c, false) }) })
	b.Run("jit-repeat", func(b *testing.B) { compiled(b, func(b *testing.B, c *jit.Code) { batch(b, c, true) }) })
	b.Run("kernel", func(b *testing.B) {
		if err := kernel.Available(); err != nil {
			b.Skip(err)
		}
		if kernelInsns == nil {
			kernelInsns = insns
		}
		kp, err := kernel.LoadProgram(kernel.XDP, kernelInsns)
		if err != nil {
			b.Fatal(err)
		}
		defer kp.Close()
		pkt := append([]byte(nil), frame...)
		// Warm up the dispatcher, then one timed call of b.N repetitions.
		if _, _, _, err := kp.TestRun(pkt, 1); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		_, _, dur, err := kp.TestRun(pkt, b.N)
		if err != nil {
			b.Fatal(err)
		}
		ns := float64(dur.Nanoseconds())
		b.ReportMetric(ns, "ns/run")
		b.ReportMetric(ns/float64(executed), "ns/insn")
	})
}

// BenchmarkALUBlock: about 100 mixed ALU instructions in a straight line.
func BenchmarkALUBlock(b *testing.B) {
	benchEngines(b, testprogs.ALUBlock(), nil, testprogs.ALUBlockInsns, nil)
}

// BenchmarkLoop: a counted loop of 1000 iterations of 6 instructions.
func BenchmarkLoop(b *testing.B) {
	benchEngines(b, testprogs.Loop(), nil, testprogs.LoopInsns, nil)
}

// BenchmarkParseIPv4: Ethernet and IPv4 header checks on a 64-byte frame,
// returning a port. The kernel reads the XDP context (32-bit pointers).
func BenchmarkParseIPv4(b *testing.B) {
	benchEngines(b, testprogs.ParseIPv4(testprogs.CtxVswitch), testprogs.ParseIPv4(testprogs.CtxXDP), testprogs.ParseIPv4Insns, testprogs.Frame64())
}

// BenchmarkEntry: `r0 = 1; exit`, the fixed cost of entering and leaving.
func BenchmarkEntry(b *testing.B) {
	benchEngines(b, asm.MustAssemble("mov %r0, 1\nexit"), nil, 2, nil)
}

// BenchmarkHelperCall: a loop of 100 helper calls (the exit to Go and
// re-entry per call).
func BenchmarkHelperCall(b *testing.B) {
	insns := asm.MustAssemble("mov %r6, 0\nloop:\ncall 8\nadd %r6, 1\njlt %r6, 100, loop\nexit")
	p := vm.MustLoad(insns, vm.Options{Helpers: vm.BaseHelpers()})
	for _, e := range []struct {
		name string
		r    func() (vm.Runner, error)
	}{{"interp", func() (vm.Runner, error) { return p, nil }}, {"jit", func() (vm.Runner, error) { return jit.Compile(p) }}} {
		b.Run(e.name, func(b *testing.B) {
			r, err := e.r()
			if err != nil {
				b.Skip(err)
			}
			env := vm.NewEnv()
			b.ReportAllocs()
			for b.Loop() {
				r.Run(env, 0, 0)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/call")
		})
	}
}
