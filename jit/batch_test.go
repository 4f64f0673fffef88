package jit_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// batchPrograms are forwarding programs that exercise what a batch must
// keep per frame: faults, helpers, dynamic regions, tail calls, local
// calls, the budget, writes to the frame and the context, flood sets.
var batchPrograms = []struct{ name, text string }{
	{"parse", `
		ldxdw %r2, [%r1+0]
		ldxdw %r3, [%r1+8]
		mov %r4, %r2
		add %r4, 14
		jgt %r4, %r3, drop
		ldxb %r0, [%r2+0]
		ldxw %r5, [%r1+16]
		add %r0, %r5
		ldxb %r5, [%r2+13]
		stxb [%r1+20], %r5
		stb [%r2+12], 0x55
		exit
	drop:
		mov %r0, 255
		exit`},
	{"unchecked read faults on short frames", `
		ldxdw %r2, [%r1+0]
		ldxw %r0, [%r2+10]
		exit`},
	{"write to data faults", `
		stdw [%r1+0], 0
		mov %r0, 1
		exit`},
	{"helpers", `
		mov %r6, %r1
		call 104
		mov %r7, %r0
		ldxdw %r1, [%r6+8]
		ldxdw %r2, [%r6+0]
		sub %r1, %r2
		mov %r3, 3
		call 100
		add %r0, %r7
		exit`},
	{"helper error on frames of 7 bytes", `
		ldxdw %r2, [%r1+8]
		ldxdw %r3, [%r1+0]
		sub %r2, %r3
		mov %r1, %r2
		call 101
		exit`},
	{"flood set in a dynamic region", `
		ldxdw %r2, [%r1+8]
		ldxdw %r3, [%r1+0]
		sub %r2, %r3
		mov %r6, %r2
		call 102
		stxdw [%r0+0], %r6
		stdw [%r0+24], -1
		mov %r0, 254
		jgt %r6, 20, out
		mov %r0, 3
	out:
		exit`},
	{"tail call on long frames", `
		ldxdw %r2, [%r1+8]
		ldxdw %r3, [%r1+0]
		sub %r2, %r3
		mov %r0, 9
		jlt %r2, 60, out
		call 103
	out:
		exit`},
	{"local call", `
		mov %r6, %r1
		call local f
		add %r0, 1
		exit
	f:
		ldxdw %r0, [%r6+8]
		ldxdw %r1, [%r6+0]
		sub %r0, %r1
		stxdw [%r10-8], %r0
		ldxdw %r0, [%r10-8]
		exit`},
	{"budget on frames over 100 bytes", `
		ldxdw %r2, [%r1+8]
		ldxdw %r3, [%r1+0]
		sub %r2, %r3
		mov %r0, 0
	loop:
		add %r0, 1
		jlt %r0, %r2, loop
		exit`},
}

func batchFrames() [][]byte {
	var frames [][]byte
	for k, n := range []int{64, 0, 1, 7, 13, 14, 60, 64, 1514, 21, 64, 101, 100, 8, 64} {
		f := make([]byte, n)
		for i := range f {
			f[i] = byte(k*31 + i)
		}
		frames = append(frames, f)
	}
	return frames
}

func cloneFrames(fs [][]byte) [][]byte {
	out := make([][]byte, len(fs))
	for k, f := range fs {
		out[k] = bytes.Clone(f)
	}
	return out
}

func resultString(r *vm.FrameResult) string {
	return fmt.Sprintf("r0=%#x executed=%d ring=%d failed=%v err=%q flood=%x", r.R0, r.Executed, r.RingNr, r.Failed(), faultString(r.Err()), r.Flood)
}

// TestRunFrames runs batches on the JIT (one entry per batch) and on the
// interpreter, and each frame alone with RunFrame: every frame's result,
// the frames' bytes and the helpers' state must agree. All runs use the
// same env and frame memory, so that addresses compare.
func TestRunFrames(t *testing.T) {
	skipIfUnsupported(t)
	orig := batchFrames()
	frames := cloneFrames(orig)
	env := vm.NewEnv()
	env.Budget = 500
	env.FloodSlot = vm.AddrOf(dynamic)
	reset := func() {
		for k := range frames {
			copy(frames[k], orig[k])
		}
		clear(dynamic)
		env.User = &helperState{}
	}
	for _, tc := range batchPrograms {
		t.Run(tc.name, func(t *testing.T) {
			p := loadText(t, tc.text)
			code, err := jit.Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer code.Close()
			want := make([]vm.FrameResult, len(frames))
			reset()
			for k, f := range frames {
				r0, err := env.RunFrame(p, f, 5)
				env.FinishFrame(&want[k], r0, err)
			}
			wantFrames := cloneFrames(frames)
			wantCalls := env.User.(*helperState).calls
			for _, r := range []vm.Runner{p, code} {
				reset()
				got := make([]vm.FrameResult, len(frames)+3)
				env.RunFrames(r, frames, 5, got)
				for k := range frames {
					if g, w := resultString(&got[k]), resultString(&want[k]); g != w {
						t.Errorf("%T: frame %d (%d bytes): %s, want %s", r, k, len(frames[k]), g, w)
					}
					if !bytes.Equal(frames[k], wantFrames[k]) {
						t.Errorf("%T: frame %d: bytes % x, want % x", r, k, frames[k], wantFrames[k])
					}
				}
				if c := env.User.(*helperState).calls; c != wantCalls {
					t.Errorf("%T: %d helper calls, want %d", r, c, wantCalls)
				}
				if got[len(frames)] != (vm.FrameResult{}) {
					t.Errorf("%T: result past the batch written", r)
				}
			}
		})
	}
}

// TestRunRepeat: the machine code's repeat loop gives the interpreter's
// result, stops at a failure, and reports a duration.
func TestRunRepeat(t *testing.T) {
	skipIfUnsupported(t)
	for _, tc := range batchPrograms {
		t.Run(tc.name, func(t *testing.T) {
			p := loadText(t, tc.text)
			code, err := jit.Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer code.Close()
			env := vm.NewEnv()
			env.Budget = 500
			env.FloodSlot = vm.AddrOf(dynamic)
			for _, n := range []int{14, 64, 101} {
				frame := make([]byte, n)
				var want string
				for _, r := range []vm.Runner{p, code} {
					clear(frame)
					clear(dynamic)
					env.User = &helperState{}
					res, mean := env.RunRepeat(r, frame, 3, 50)
					got := fmt.Sprintf("%s frame % x calls %d", resultString(&res), frame[:14], env.User.(*helperState).calls)
					if mean <= 0 {
						t.Errorf("%T: mean duration %v", r, mean)
					}
					if want == "" {
						want = got
					} else if got != want {
						t.Errorf("%d bytes: jit %s, interpreter %s", n, got, want)
					}
				}
			}
		})
	}
}

// TestRunFramesNoAllocs: a batch does not allocate, with or without
// helper calls and faults.
func TestRunFramesNoAllocs(t *testing.T) {
	skipIfUnsupported(t)
	for _, k := range []int{0, 1, 3, 7, 8} {
		tc := batchPrograms[k]
		p := loadText(t, tc.text)
		code, err := jit.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		frames := batchFrames()
		res := make([]vm.FrameResult, len(frames))
		env := vm.NewEnv()
		env.Budget = 500
		env.User = &helperState{}
		for _, r := range []vm.Runner{p, code} {
			if n := testing.AllocsPerRun(100, func() { env.RunFrames(r, frames, 1, res) }); n != 0 {
				t.Errorf("%s, %T: %v allocations per batch", tc.name, r, n)
			}
		}
		code.Close()
	}
}

// TestFaultInLocalCallThenRun: a run that faults inside a local call
// leaves the call depth behind; the next run (alone or the next frame of a
// batch, also in a tail call's target) must start at depth 0.
func TestFaultInLocalCallThenRun(t *testing.T) {
	skipIfUnsupported(t)
	// f faults when r6 is 1: at depth 1.
	p := loadText(t, `
		mov %r6, %r1
		call local f
		mov %r0, 7
		exit
	f:
		jne %r6, 1, ok
		ldxdw %r0, [%r6+0]
	ok:
		mov %r0, 3
		exit`)
	c, err := jit.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, r := range []vm.Runner{p, c} {
		env := vm.NewEnv()
		if _, err := r.Run(env, 1, 0); err == nil {
			t.Fatalf("%T: no fault", r)
		}
		r0, err := r.Run(env, 0, 0)
		if err != nil || r0 != 7 || env.Executed != 7 {
			t.Errorf("%T: run after a fault in a local call: r0 %d, %v, executed %d; want 7, executed 7", r, r0, err, env.Executed)
		}
	}
	// In a batch: the tail call's target has the local call; the frame's
	// first byte decides whether it faults.
	target := loadText(t, `
		ldxdw %r6, [%r1+0]
		ldxb %r6, [%r6+0]
		call local f
		mov %r0, 7
		exit
	f:
		jne %r6, 1, ok
		ldxdw %r0, [%r6+0]
	ok:
		mov %r0, 3
		exit`)
	hs := testHelpers()
	hs.Register(vm.Helper{ID: 110, Name: "tail", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		env.TailCall(target)
		return 0, nil
	}})
	main := vm.MustLoad(asm.MustAssemble("call 110\nmov %r0, 1\nexit"), vm.Options{Helpers: hs})
	mc, err := jit.Compile(main)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	for _, r := range []vm.Runner{main, mc} {
		env := vm.NewEnv()
		frames := [][]byte{{1}, {0}, {1}, {0}}
		res := make([]vm.FrameResult, len(frames))
		env.RunFrames(r, frames, 0, res)
		for k := range res {
			if fail := k%2 == 0; res[k].Failed() != fail || !fail && (res[k].R0 != 7 || res[k].Executed != 9) {
				t.Errorf("%T: frame %d: %s", r, k, resultString(&res[k]))
			}
		}
	}
}
