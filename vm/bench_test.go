package vm_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/testprogs"
	"github.com/govswitch/vswitch/vm"
)

func benchProgram(b *testing.B, insns []asm.Instruction, executed int, frame []byte) {
	p := vm.MustLoad(insns, vm.Options{})
	env := vm.NewEnv()
	if frame == nil {
		frame = make([]byte, 64)
	}
	if _, err := env.RunFrame(p, frame, 0); err != nil {
		b.Fatal(err)
	}
	if env.Executed != uint64(executed) {
		b.Fatalf("executed %d instructions, want %d", env.Executed, executed)
	}
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := testprogs.ThreadCPU()
	b.ResetTimer()
	for b.Loop() {
		env.RunFrame(p, frame, 0)
	}
	cpu = testprogs.ThreadCPU() - cpu
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(executed), "ns/insn")
	// CPU time of this thread: what the runs cost while they ran, on a
	// machine where other work takes turns on the cores.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(executed), "cpu-ns/insn")
}

func BenchmarkInterpALUBlock(b *testing.B) {
	benchProgram(b, testprogs.ALUBlock(), testprogs.ALUBlockInsns, nil)
}

func BenchmarkInterpLoop(b *testing.B) {
	benchProgram(b, testprogs.Loop(), testprogs.LoopInsns, nil)
}

func BenchmarkInterpParseIPv4(b *testing.B) {
	benchProgram(b, testprogs.ParseIPv4(testprogs.CtxVswitch), testprogs.ParseIPv4Insns, testprogs.Frame64())
}

func BenchmarkInterpEntry(b *testing.B) {
	benchProgram(b, asm.MustAssemble("mov %r0, 1\nexit"), 2, nil)
}

func TestParseIPv4(t *testing.T) {
	p := vm.MustLoad(testprogs.ParseIPv4(testprogs.CtxVswitch), vm.Options{})
	env := vm.NewEnv()
	got, err := env.RunFrame(p, testprogs.Frame64(), 0)
	if err != nil || got != 2 {
		t.Fatalf("got %d, %v; want port 2", got, err)
	}
	f := testprogs.Frame64()
	f[12] = 0x86
	if got, _ := env.RunFrame(p, f, 0); got != 255 {
		t.Errorf("non-IPv4: got %d, want 255", got)
	}
}

// The same programs on the kernel's JIT through BPF_PROG_TEST_RUN (XDP,
// the lowest per-run overhead), timed by the kernel itself: run them in
// the same `go test -bench` invocation as the Interp benchmarks to compare.
func benchKernel(b *testing.B, insns []asm.Instruction, executed int, frame []byte) {
	if err := kernel.Available(); err != nil {
		b.Skipf("kernel eBPF: %v", err)
	}
	p, err := kernel.LoadProgram(kernel.XDP, insns)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if frame == nil {
		frame = make([]byte, 64)
	}
	var total time.Duration
	for b.Loop() {
		// One test run of many repeats per iteration: the kernel reports
		// the mean time of a run, without the syscall's own cost.
		_, _, d, err := p.TestRun(frame, 1000)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	perRun := float64(total.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perRun, "ns/run")
	b.ReportMetric(perRun/float64(executed), "ns/insn")
}

func BenchmarkKernelALUBlock(b *testing.B) {
	benchKernel(b, testprogs.ALUBlock(), testprogs.ALUBlockInsns, nil)
}

func BenchmarkKernelLoop(b *testing.B) {
	benchKernel(b, testprogs.Loop(), testprogs.LoopInsns, nil)
}

func BenchmarkKernelParseIPv4(b *testing.B) {
	benchKernel(b, testprogs.ParseIPv4(testprogs.CtxXDP), testprogs.ParseIPv4Insns, testprogs.Frame64())
}

func BenchmarkKernelEntry(b *testing.B) {
	benchKernel(b, asm.MustAssemble("mov %r0, 1\nexit"), 2, nil)
}
