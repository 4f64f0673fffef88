package jit_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/progen"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// packetFrames are frames of lengths around what packet programs check.
func packetFrames(rng *rand.Rand) [][]byte {
	var fs [][]byte
	for _, n := range []int{0, 1, 13, 14, 20, 33, 34, 42, 60, 64, 65, 90, 128, 200} {
		f := make([]byte, n)
		for i := range f {
			f[i] = byte(rng.Uint32())
		}
		fs = append(fs, f)
	}
	return fs
}

// packetDiffer runs a frame program on the interpreter and the JIT, in
// batches and frame by frame, on the same frames and env, and reports the
// first difference.
type packetDiffer struct {
	env    *vm.Env
	orig   [][]byte
	frames [][]byte
	res    [2][]vm.FrameResult
}

func newPacketDiffer(rng *rand.Rand) *packetDiffer {
	d := &packetDiffer{env: vm.NewEnv(), orig: packetFrames(rng)}
	d.frames = cloneFrames(d.orig)
	d.res[0] = make([]vm.FrameResult, len(d.orig))
	d.res[1] = make([]vm.FrameResult, len(d.orig))
	return d
}

func (d *packetDiffer) reset() {
	for k := range d.frames {
		copy(d.frames[k], d.orig[k])
	}
	clear(d.env.Stack())
	clear(dynamic)
}

func (d *packetDiffer) compare(p *vm.Program) string {
	c, err := jit.Compile(p)
	if err != nil {
		return "compile: " + err.Error()
	}
	defer c.Close()
	d.env.Budget = 20000
	d.reset()
	d.env.RunFrames(p, d.frames, 3, d.res[0])
	want := cloneFrames(d.frames)
	wantStack := bytes.Clone(d.env.Stack())
	wantDynamic := bytes.Clone(dynamic)
	for _, batch := range []bool{true, false} {
		d.reset()
		if batch {
			d.env.RunFrames(c, d.frames, 3, d.res[1])
		} else {
			for k, f := range d.frames {
				r0, err := d.env.RunFrame(c, f, 3)
				d.env.FinishFrame(&d.res[1][k], r0, err)
			}
		}
		for k := range d.frames {
			if g, w := resultString(&d.res[1][k]), resultString(&d.res[0][k]); g != w {
				return "frame " + itoa(len(d.frames[k])) + " bytes: jit " + g + ", interpreter " + w
			}
			if !bytes.Equal(d.frames[k], want[k]) {
				return "frame " + itoa(len(d.frames[k])) + " bytes: contents differ after the run"
			}
		}
		if !bytes.Equal(d.env.Stack(), wantStack) {
			return "stacks differ"
		}
		if !bytes.Equal(dynamic, wantDynamic) {
			return "dynamic regions differ"
		}
	}
	return ""
}

// TestPacketDifferential runs generated packet programs, checked ones and
// ones a verifier would refuse (which fault on short frames, and whose
// unchecked accesses the analysis must not prove), on both engines.
func TestPacketDifferential(t *testing.T) {
	skipIfUnsupported(t)
	n := 2000
	if testing.Short() {
		n = 200
	}
	d := newPacketDiffer(rand.New(rand.NewPCG(1, 2)))
	faults := 0
	for seed := range uint64(n) {
		rng := rand.New(rand.NewPCG(seed, 3))
		insns := progen.GeneratePacket(rng, progen.PacketConfig{Parts: 4 + int(seed%28), Unsafe: seed%2 == 1})
		p, err := vm.Load(insns, vm.Options{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if diff := d.compare(p); diff != "" {
			t.Fatalf("seed %d: %s\n%s", seed, diff, listing(insns))
		}
		for _, r := range d.res[0] {
			if r.Failed() {
				faults++
			}
		}
	}
	if faults == 0 {
		t.Error("no generated program faulted: the unsafe programs do not exercise failing proofs")
	}
	t.Logf("%d programs, %d frames faulted", n, faults)
}

// FuzzPacket is TestPacketDifferential with the fuzzer picking the seed
// and the configuration.
func FuzzPacket(f *testing.F) {
	skipIfUnsupported(f)
	for k := range uint64(8) {
		f.Add(k, uint8(k))
	}
	d := newPacketDiffer(rand.New(rand.NewPCG(1, 2)))
	f.Fuzz(func(t *testing.T, seed uint64, flags uint8) {
		insns := progen.GeneratePacket(rand.New(rand.NewPCG(seed, uint64(flags))),
			progen.PacketConfig{Parts: 1 + int(flags>>1)%40, Unsafe: flags&1 == 1})
		p, err := vm.Load(insns, vm.Options{})
		if err != nil {
			t.Fatalf("generated program refused: %v", err)
		}
		if diff := d.compare(p); diff != "" {
			t.Fatalf("engines differ: %s\n%s", diff, listing(insns))
		}
	})
}

// TestKernelPacketDifferential compares the JIT's frame runs with the
// kernel's (XDP, BPF_PROG_TEST_RUN) on generated packet programs that the
// verifier accepts: the same program with the XDP context's loads. They
// must return the same value and leave the same bytes in the frame.
func TestKernelPacketDifferential(t *testing.T) {
	skipIfUnsupported(t)
	if err := kernel.Available(); err != nil {
		t.Skipf("no kernel reference: %v", err)
	}
	n := 300
	if testing.Short() {
		n = 30
	}
	env := vm.NewEnv()
	frames := packetFrames(rand.New(rand.NewPCG(5, 6)))[3:] // the kernel wants 14 bytes at least
	res := make([]vm.FrameResult, len(frames))
	for seed := range uint64(n) {
		cfg := progen.PacketConfig{Parts: 4 + int(seed%28)}
		cfg.Ctx = progen.CtxXDP
		kinsns := progen.GeneratePacket(rand.New(rand.NewPCG(seed, 9)), cfg)
		cfg.Ctx = progen.CtxVswitch
		insns := progen.GeneratePacket(rand.New(rand.NewPCG(seed, 9)), cfg)
		kp, err := kernel.LoadProgram(kernel.XDP, kinsns)
		if err != nil {
			t.Fatalf("seed %d: kernel: %v", seed, err)
		}
		c, err := jit.Compile(vm.MustLoad(insns, vm.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		ours := cloneFrames(frames)
		env.RunFrames(c, ours, 0, res)
		c.Close()
		for k, f := range frames {
			ret, out, _, err := kp.TestRun(f, 1)
			if err != nil {
				t.Fatalf("seed %d: kernel run: %v", seed, err)
			}
			if res[k].Failed() || uint64(ret) != res[k].R0 || !bytes.Equal(out, ours[k]) {
				t.Fatalf("seed %d, frame of %d bytes: jit r0 %#x (%v), kernel %#x; frames equal: %v\n%s",
					seed, len(f), res[k].R0, res[k].Err(), ret, bytes.Equal(out, ours[k]), listing(insns))
			}
		}
		kp.Close()
	}
	t.Logf("%d generated packet programs on %d frames each: JIT and kernel agree", n, len(frames))
}
