package progen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/testenv"
)

// TestKernelLoads loads generated programs, as Run64 wraps them, into the
// kernel and wants its verifier to accept all of them (at least 99%).
func TestKernelLoads(t *testing.T) {
	testenv.Need(t, "kernel eBPF (needs Linux and root)", kernel.Available())
	n := 2000
	if testing.Short() {
		n = 200
	}
	lengths := []int{8, 32, 64, 128, 300}
	var refused []string
	var processed time.Duration
	for seed := range uint64(n) {
		cfg := Config{
			Length: lengths[seed%uint64(len(lengths))],
			Omit:   KernelSafe,
			Loops:  seed%2 == 1,
		}
		prog := Generate(rngFor(seed), cfg)
		start := time.Now()
		p, err := kernel.LoadProgram(kernel.XDP, kernel.Wrap64(prog))
		processed += time.Since(start)
		if err != nil {
			var verr *kernel.VerifierError
			if !errors.As(err, &verr) {
				t.Fatalf("seed %d: %v", seed, err)
			}
			refused = append(refused, fmt.Sprintf("seed %d %+v: %v\nprogram (log numbers are %d higher):\n%s",
				seed, cfg, err, kernel.Run64Offset, strings.Join(asm.Disassemble(prog), "\n")))
			continue
		}
		if seed%10 == 0 {
			if _, _, _, err := p.TestRun(make([]byte, 64), 1); err != nil {
				t.Errorf("seed %d: run: %v", seed, err)
			}
		}
		p.Close()
	}
	t.Logf("%d programs, %d refused, %v loading", n, len(refused), processed)
	reasons := map[string]int{}
	for _, r := range refused {
		reasons[reason(r)]++
	}
	for r, k := range reasons {
		t.Logf("%4d refused: %s", k, r)
	}
	for k, r := range refused {
		if k == 3 {
			t.Logf("... and %d more", len(refused)-k)
			break
		}
		t.Logf("refused: %s", r)
	}
	if len(refused) > n/100 {
		t.Errorf("kernel refused %d of %d programs, want at most 1%%", len(refused), n)
	} else if len(refused) > 0 {
		t.Errorf("kernel refused %d of %d programs (within the 1%% allowed, but the generator should be fixed)", len(refused), n)
	}
}

// reason is the verifier's complaint: the log line before "processed".
func reason(report string) string {
	lines := strings.Split(report, "\n")
	for k, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "processed ") && k > 0 {
			return strings.TrimSpace(lines[k-1])
		}
	}
	return "?"
}

// TestKernelLoadsPackets loads generated packet programs (XDP context)
// into the kernel: its verifier must accept every one of them, as they
// check every access against data_end.
func TestKernelLoadsPackets(t *testing.T) {
	if err := kernel.Available(); err != nil {
		t.Skipf("kernel eBPF not usable here (needs Linux and root): %v", err)
	}
	n := 1000
	if testing.Short() {
		n = 100
	}
	for seed := range uint64(n) {
		prog := GeneratePacket(rngFor(seed), PacketConfig{Ctx: CtxXDP, Parts: 4 + int(seed%24)})
		p, err := kernel.LoadProgram(kernel.XDP, prog)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, strings.Join(asm.Disassemble(prog), "\n"))
		}
		if _, _, _, err := p.TestRun(make([]byte, 64), 1); err != nil {
			t.Errorf("seed %d: run: %v", seed, err)
		}
		p.Close()
	}
}

// TestKernelTailCases: the kernel computes what the hand-written tail call
// sets say (it is the oracle their expected results come from).
func TestKernelTailCases(t *testing.T) {
	testenv.Need(t, "kernel eBPF (needs Linux and root)", kernel.Available())
	for _, c := range TailCases() {
		if !c.Kernel {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			ret, value, err := kernel.RunTailCalls(c.Progs, TailSlots, 8)
			if err != nil {
				t.Fatal(err)
			}
			if v := binary.LittleEndian.Uint64(value); ret != uint32(c.R0) || v != c.Value {
				t.Errorf("kernel: r0 %#x, map[1] %d; the case says r0 %#x, map[1] %d", ret, v, uint32(c.R0), c.Value)
			}
		})
	}
}

// TestKernelLoadsTail: the kernel's verifier accepts every generated tail
// call set (every program of it).
func TestKernelLoadsTail(t *testing.T) {
	testenv.Need(t, "kernel eBPF (needs Linux and root)", kernel.Available())
	n := 300
	if testing.Short() {
		n = 30
	}
	for seed := range uint64(n) {
		progs := GenerateTail(rngFor(seed), TailConfig{Funcs: 1 + int(seed%7)})
		if _, _, err := kernel.RunTailCalls(progs, TailSlots, 8); err != nil {
			var b strings.Builder
			for k, p := range progs {
				fmt.Fprintf(&b, "slot %d:\n%s\n", k, strings.Join(asm.Disassemble(p), "\n"))
			}
			t.Fatalf("seed %d: %v\n%s", seed, err, b.String())
		}
	}
}
