package progen

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/asm"
)

func rngFor(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// configs is a spread of configurations the tests cover.
func configs() []Config {
	return []Config{
		{},
		{Length: 16},
		{Length: 200, Loops: true},
		{Length: 64, Loops: true, MaxLoopCount: 3},
		{Omit: KernelSafe},
		{Omit: KernelSafe, Loops: true, Length: 120},
		{Omit: AllFeatures},
		{Omit: AllFeatures &^ FeatureAtomicFetch &^ FeatureCmpXchg32, Length: 40},
		{Omit: FeatureStackPointer | FeatureLDDW | FeatureALU32, Loops: true},
	}
}

func TestGenerateKeepsPromises(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 30
	}
	for ci, cfg := range configs() {
		for seed := range uint64(seeds) {
			prog := Generate(rngFor(seed), cfg)
			err := check(prog, checkOpts{loops: cfg.Loops, aligned: cfg.Omit&FeatureUnalignedStack != 0})
			if err != nil {
				t.Fatalf("config %d %+v seed %d: %v\n%s", ci, cfg, seed, err, strings.Join(asm.Disassemble(prog), "\n"))
			}
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	cfg := Config{Loops: true, Length: 100}
	a := Generate(rngFor(7), cfg)
	b := Generate(rngFor(7), cfg)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different programs (-first +second):\n%s", diff)
	}
	if c := Generate(rngFor(8), cfg); cmp.Equal(a, c) {
		t.Error("seeds 7 and 8 gave the same program")
	}
}

// TestOmit checks that omitted features are absent and, over many seeds,
// that each feature does appear when allowed.
func TestOmit(t *testing.T) {
	seen := Feature(0)
	var backward bool
	for seed := range uint64(400) {
		for _, cfg := range []Config{{Loops: true}, {Omit: KernelSafe}} {
			prog := Generate(rngFor(seed), cfg)
			used, back := features(prog)
			if used&cfg.Omit != 0 {
				t.Fatalf("seed %d: omitted features %#x used\n%s", seed, used&cfg.Omit, strings.Join(asm.Disassemble(prog), "\n"))
			}
			if back && !cfg.Loops {
				t.Fatalf("seed %d: backward jump without Loops", seed)
			}
			seen |= used
			backward = backward || back
		}
	}
	if seen != AllFeatures {
		t.Errorf("features never generated: %#x", AllFeatures&^seen)
	}
	if !backward {
		t.Error("no loop generated")
	}
}

// features reports which features prog uses (as far as they show in the
// code) and whether it jumps backward.
func features(prog []asm.Instruction) (used Feature, backward bool) {
	for pc := 0; pc < len(prog); pc++ {
		i := prog[pc]
		op := i.Op & 0xf0
		switch i.Class() {
		case asm.ClassALU, asm.ClassALU64:
			width := int32(64)
			if i.Class() == asm.ClassALU {
				used |= FeatureALU32
				width = 32
			}
			switch {
			case (op == asm.ALUDiv || op == asm.ALUMod) && i.Off == 1:
				used |= FeatureSignedDiv
			case op == asm.ALUMov && i.Off != 0:
				used |= FeatureMovSX
			case op == asm.ALUEnd && i.Class() == asm.ClassALU64:
				used |= FeatureBswap
			case op == asm.ALUEnd:
				used |= FeatureEndian
			case op == asm.ALUMov && i.Src == 10:
				used |= FeatureStackPointer
			}
			if i.Op&asm.SrcX == 0 && (op == asm.ALUDiv || op == asm.ALUMod) && i.Imm == 0 {
				used |= FeatureImmDivZero
			}
			if i.Op&asm.SrcX == 0 && (op == asm.ALULsh || op == asm.ALURsh || op == asm.ALUArsh) && (i.Imm < 0 || i.Imm >= width) {
				used |= FeatureWideImmShift
			}
		case asm.ClassLD:
			used |= FeatureLDDW
			pc++
		case asm.ClassLDX:
			if i.Op&0xe0 == asm.ModeMEMSX {
				used |= FeatureLoadSX
			}
			if i.Src == 10 && int(i.Off)%sizeOf(i.Op) != 0 {
				used |= FeatureUnalignedStack
			}
		case asm.ClassST, asm.ClassSTX:
			if i.Dst == 10 && int(i.Off)%sizeOf(i.Op) != 0 {
				used |= FeatureUnalignedStack
			}
			if i.Op&0xe0 == asm.ModeATOMIC {
				if i.Imm&asm.AtomicFetch != 0 {
					used |= FeatureAtomicFetch
				} else {
					used |= FeatureAtomics
				}
				if i.Imm == asm.AtomicCmpXchg && i.Op&0x18 == asm.SizeW {
					used |= FeatureCmpXchg32
				}
			}
		case asm.ClassJMP, asm.ClassJMP32:
			switch {
			case i.Op == asm.OpExit:
				if pc != len(prog)-1 {
					used |= FeatureEarlyExit
				}
			case i.Op == asm.OpJA32:
				used |= FeatureGotol
				backward = backward || i.Imm < 0
			case i.Class() == asm.ClassJMP32:
				used |= FeatureJMP32
				backward = backward || i.Off < 0
			default:
				backward = backward || i.Off < 0
			}
		}
	}
	return used, backward
}

func TestCheckerCatchesBrokenPrograms(t *testing.T) {
	for _, tt := range []struct{ name, src, want string }{
		{"uninit register", "mov %r0, %r6\nexit", "r6 read as a scalar"},
		{"uninit stack", "mov %r0, 0\nldxdw %r0, [%r10-8]\nexit", "uninitialized stack"},
		{"pointer leak", "mov %r0, %r10\nexit", "r0 read as a scalar"},
		{"pointer arithmetic", "mov %r1, %r10\nmov %r0, 1\nmul %r1, 2\nexit", "r1 read as a scalar"},
		{"out of bounds", "mov %r0, 0\nstxdw [%r10-520], %r0\nexit", "out of bounds"},
		{"unreachable", "mov %r0, 0\nja +1\nmov %r0, 1\nexit", "unreachable"},
		{"backward", "mov %r0, 0\njeq %r0, 0, -2\nexit", "backward"},
		{"mixed", "mov %r0, 0\nmov %r1, 0\njeq %r0, 1, +1\nmov %r1, %r10\nstxdw [%r1-8], %r0\nexit", "not a stack pointer"},
	} {
		err := check(asm.MustAssemble(tt.src), checkOpts{aligned: true})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}
