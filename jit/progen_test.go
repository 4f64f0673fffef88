package jit_test

import (
	"math/rand/v2"
	"testing"

	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/progen"
	"github.com/govswitch/vswitch/internal/testenv"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

func progenConfig(flags uint8) progen.Config {
	cfg := progen.Config{Length: 16 + int(flags&3)*48, Loops: flags&4 != 0}
	if flags&8 != 0 {
		cfg.Omit = progen.KernelSafe
	}
	return cfg
}

// TestProgenDifferential runs a few thousand generated programs on both
// engines, which must agree on everything.
func TestProgenDifferential(t *testing.T) {
	skipIfUnsupported(t)
	n := 3000
	if testing.Short() {
		n = 300
	}
	d := newDiffer()
	for seed := range uint64(n) {
		rng := rand.New(rand.NewPCG(seed, 7))
		insns := progen.Generate(rng, progenConfig(uint8(seed)))
		p, err := vm.Load(insns, vm.Options{Helpers: testHelpers()})
		if err != nil {
			t.Fatalf("seed %d: generated program refused: %v", seed, err)
		}
		if _, _, diff := d.compare(p, nil, 0); diff != "" {
			t.Fatalf("seed %d: engines differ: %s\n%s", seed, diff, listing(insns))
		}
	}
}

// FuzzProgen is FuzzDifferential on internal/progen's programs: the fuzzer
// picks the seed and the configuration.
func FuzzProgen(f *testing.F) {
	skipIfUnsupported(f)
	for k := range uint64(16) {
		f.Add(k, uint8(k))
	}
	d := newDiffer()
	f.Fuzz(func(t *testing.T, seed uint64, flags uint8) {
		rng := rand.New(rand.NewPCG(seed, uint64(flags)))
		insns := progen.Generate(rng, progenConfig(flags))
		p, err := vm.Load(insns, vm.Options{Helpers: testHelpers()})
		if err != nil {
			t.Fatalf("generated program refused: %v", err)
		}
		if _, _, diff := d.compare(p, nil, 0); diff != "" {
			t.Fatalf("engines differ: %s\n%s", diff, listing(insns))
		}
	})
}

// TestKernelDifferential compares the JIT with the kernel's own eBPF (its
// JIT, through BPF_PROG_TEST_RUN) on generated programs the kernel
// verifier accepts and computes correctly (progen.KernelSafe).
func TestKernelDifferential(t *testing.T) {
	skipIfUnsupported(t)
	testenv.Need(t, "kernel eBPF (the reference)", kernel.Available())
	n := 300
	if testing.Short() {
		n = 30
	}
	env := vm.NewEnv()
	for seed := range uint64(n) {
		rng := rand.New(rand.NewPCG(seed, 99))
		cfg := progen.Config{Length: 32 + int(seed%4)*32, Loops: seed%2 == 1, Omit: progen.KernelSafe}
		insns := progen.Generate(rng, cfg)
		want, err := kernel.Run64(insns)
		if err != nil {
			t.Fatalf("seed %d: kernel: %v\n%s", seed, err, listing(insns))
		}
		c, err := jit.Compile(vm.MustLoad(insns, vm.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Run(env, 0, 0)
		c.Close()
		if err != nil || got != want {
			t.Fatalf("seed %d: jit returned %#x (err %v), kernel %#x\n%s", seed, got, err, want, listing(insns))
		}
	}
	t.Logf("%d generated programs: JIT and kernel agree", n)
}
