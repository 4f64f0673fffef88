//go:build linux && amd64

package jit_test

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// mappings counts this process's memory mappings.
func mappings(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	return bytes.Count(b, []byte{'\n'})
}

// residentPages returns the resident set size in pages.
func residentPages(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip(err)
	}
	f := bytes.Fields(b)
	n := 0
	for _, c := range f[1] {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestLoadUnload compiles, runs and closes 100,000 programs: neither the
// mappings nor the resident memory may grow.
func TestLoadUnload(t *testing.T) {
	skipIfUnsupported(t)
	n := 100_000
	if testing.Short() || raceDetector {
		n = 10_000
	}
	p := vm.MustLoad(asm.MustAssemble("mov %r0, %r1\nadd %r0, 1\nexit"), vm.Options{})
	env := vm.NewEnv()
	cycle := func(k int) {
		c, err := jit.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		if r0, err := c.Run(env, uint64(k), 0); err != nil || r0 != uint64(k)+1 {
			t.Fatalf("run %d: %d, %v", k, r0, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Run(env, 0, 0); err != jit.ErrClosed {
			t.Fatalf("run after close: %v", err)
		}
	}
	for k := range 1000 { // warm up
		cycle(k)
	}
	runtime.GC()
	maps0, rss0 := mappings(t), residentPages(t)
	for k := range n {
		cycle(k)
	}
	runtime.GC()
	maps1, rss1 := mappings(t), residentPages(t)
	t.Logf("%d programs: mappings %d -> %d, resident pages %d -> %d", n, maps0, maps1, rss0, rss1)
	if raceDetector {
		return // its shadow memory grows with every allocation
	}
	if maps1 > maps0+8 {
		t.Errorf("mappings grew from %d to %d", maps0, maps1)
	}
	if rss1 > rss0+2048 { // 8 MiB of slack for the GC's own growth
		t.Errorf("resident memory grew from %d to %d pages", rss0, rss1)
	}
}

// TestCleanup drops compiled programs without Close: the garbage
// collector releases their code memory.
func TestCleanup(t *testing.T) {
	skipIfUnsupported(t)
	runtime.GC()
	maps0 := mappings(t)
	for k := range 2000 {
		p := vm.MustLoad(asm.MustAssemble("mov %r0, 1\nexit"), vm.Options{})
		if k%2 == 0 {
			if _, err := jit.Compile(p); err != nil {
				t.Fatal(err)
			}
		} else if _, ok := jit.Best(p).(*jit.Code); !ok {
			t.Fatal("Best did not compile")
		}
	}
	for range 5 {
		runtime.GC()
	}
	// Cleanups run on their own goroutine: give them a moment.
	for range 100 {
		if mappings(t) <= maps0+8 {
			break
		}
		runtime.Gosched()
		runtime.GC()
	}
	if m := mappings(t); m > maps0+8 {
		t.Errorf("mappings grew from %d to %d: code memory is not released", maps0, m)
	}
}

// TestNoAllocs checks that runs do not allocate: plain, with a helper call,
// with a local call, and faulting.
func TestNoAllocs(t *testing.T) {
	skipIfUnsupported(t)
	mem := make([]byte, 16)
	for _, tc := range []struct{ name, text string }{
		{"alu", "mov %r0, 1\nadd %r0, %r2\nexit"},
		{"helper", "mov %r1, 1\ncall 100\nexit"},
		{"local call", "call local f\nexit\nf:\nstdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit"},
		{"memory", "ldxdw %r0, [%r1+8]\nstdw [%r1+0], 3\nexit"},
		{"fault", "ldxdw %r0, [%r1+9]\nexit"},
		{"helper error", "mov %r1, 7\ncall 101\nexit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := jit.Compile(loadText(t, tc.text))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			env := vm.NewEnv()
			env.SetArgBytes(0, mem)
			a := vm.AddrOf(mem)
			if n := testing.AllocsPerRun(1000, func() { c.Run(env, a, 16) }); n != 0 {
				t.Errorf("%v allocations per run", n)
			}
		})
	}
}

// TestBest checks that Best compiles once and attaches the code to the
// program, and that Close detaches it.
func TestBest(t *testing.T) {
	skipIfUnsupported(t)
	p := vm.MustLoad(exitProg, vm.Options{})
	r := jit.Best(p)
	c, ok := r.(*jit.Code)
	if !ok {
		t.Fatalf("Best returned %T", r)
	}
	if jit.Best(p) != r {
		t.Error("second Best compiled again")
	}
	if n := p.Native.Load(); n == nil || n.Runner != r || n.Size != c.Size() {
		t.Errorf("p.Native = %+v", n)
	}
	c.Close()
	if p.Native.Load() != nil {
		t.Error("Close did not detach")
	}
}

// TestConcurrentRuns runs one Code from several goroutines, each with its
// own Env (go test -race covers the Go side).
func TestConcurrentRuns(t *testing.T) {
	skipIfUnsupported(t)
	p := loadText(t, "mov %r0, 0\nloop:\nadd %r0, %r1\nstxdw [%r10-8], %r0\ncall 104\nldxdw %r0, [%r10-8]\nsub %r2, 1\njne %r2, 0, loop\nexit")
	c, err := jit.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error)
	for g := range 4 {
		go func() {
			env := vm.NewEnv()
			env.User = &helperState{}
			for k := range 200 {
				r0, err := c.Run(env, uint64(g), uint64(k+1))
				if err != nil || r0 != uint64(g*(k+1)) {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestCloseDuringRun closes code while a run is inside a helper: the run
// resumes in the machine code and completes, runs after Close fail with
// ErrClosed, and the code is unmapped once the env that ran it has seen
// that (an env keeps the code it ran last mapped).
func TestCloseDuringRun(t *testing.T) {
	skipIfUnsupported(t)
	inside, proceed := make(chan struct{}), make(chan struct{})
	hs := vm.BaseHelpers()
	if err := hs.Register(vm.Helper{ID: 100, Name: "block", Fn: func(*vm.Env, uint64, uint64, uint64, uint64, uint64) (uint64, error) {
		inside <- struct{}{}
		<-proceed
		return 40, nil
	}}); err != nil {
		t.Fatal(err)
	}
	p := vm.MustLoad(asm.MustAssemble("call 100\nadd %r0, 2\nexit"), vm.Options{Helpers: hs})
	for _, how := range []string{"run", "frames", "repeat"} {
		t.Run(how, func(t *testing.T) {
			c, err := jit.Compile(p)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan string)
			env := vm.NewEnv()
			go func() {
				frame := make([]byte, 64)
				var r0 uint64
				var err error
				switch how {
				case "run":
					r0, err = c.Run(env, 0, 0)
				case "frames":
					res := make([]vm.FrameResult, 1)
					env.RunFrames(c, [][]byte{frame}, 0, res)
					r0, err = res[0].R0, res[0].Err()
				case "repeat":
					res, _ := env.RunRepeat(c, frame, 0, 1)
					r0, err = res.R0, res.Err()
				}
				if err != nil || r0 != 42 {
					done <- fmt.Sprintf("run across Close: %d, %v", r0, err)
					return
				}
				done <- ""
			}()
			<-inside
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if c.Listing() == nil {
				t.Error("code unmapped while a run is in progress")
			}
			close(proceed)
			if msg := <-done; msg != "" {
				t.Fatal(msg)
			}
			if _, err := c.Run(env, 0, 0); err != jit.ErrClosed {
				t.Errorf("run after Close: %v, want ErrClosed", err)
			}
			if c.Listing() != nil {
				t.Error("code still mapped after the last run returned and its env saw the code closed")
			}
			// The env moves on to other code; the closed code stays closed.
			other, err := jit.Compile(vm.MustLoad(exitProg, vm.Options{}))
			if err != nil {
				t.Fatal(err)
			}
			if r0, err := other.Run(env, 0, 0); err != nil || r0 != 42 {
				t.Errorf("other code on the same env: %d, %v", r0, err)
			}
			if _, err := c.Run(env, 0, 0); err != jit.ErrClosed {
				t.Errorf("closed code run again: %v, want ErrClosed", err)
			}
			other.Close()
			res := make([]vm.FrameResult, 2)
			env.RunFrames(c, [][]byte{make([]byte, 64), make([]byte, 64)}, 0, res)
			for k := range res {
				if !res[k].Failed() || res[k].Err() != jit.ErrClosed {
					t.Errorf("batch after Close: frame %d: %v", k, res[k].Err())
				}
			}
			proceed = make(chan struct{})
		})
	}
}

// TestCloseUnderRunningGoroutines closes codes while goroutines run them
// in loops (single runs, batches, repeats): every run either completes
// with the right answer or fails with ErrClosed, and nothing faults. Run
// it with -race.
func TestCloseUnderRunningGoroutines(t *testing.T) {
	skipIfUnsupported(t)
	p := loadText(t, "mov %r6, 0\nloop:\ncall 104\nadd %r6, 1\njlt %r6, 50, loop\nmov %r0, %r6\nexit")
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		c, err := jit.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 3)
		start := make(chan struct{})
		for g := range 3 {
			go func() {
				env := vm.NewEnv()
				env.User = &helperState{}
				frames := [][]byte{make([]byte, 60), make([]byte, 60), make([]byte, 60)}
				res := make([]vm.FrameResult, len(frames))
				<-start
				for k := 0; ; k++ {
					var r0 uint64
					var err error
					switch (g + k) % 3 {
					case 0:
						r0, err = c.Run(env, 0, 0)
					case 1:
						env.RunFrames(c, frames, 0, res)
						r0, err = res[len(res)-1].R0, res[len(res)-1].Err()
					case 2:
						var r vm.FrameResult
						r, _ = env.RunRepeat(c, frames[0], 0, 4)
						r0, err = r.R0, r.Err()
					}
					if err == jit.ErrClosed {
						errs <- nil
						return
					}
					if err != nil || r0 != 50 {
						errs <- fmt.Errorf("round %d: %d, %v", round, r0, err)
						return
					}
				}
			}()
		}
		close(start)
		for range round % 7 {
			runtime.Gosched()
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if c.Listing() != nil {
			t.Fatalf("round %d: code still mapped after every run returned", round)
		}
	}
}

// TestCloseThenDropEnv: code closed while an env still holds it (the env
// ran it last) is unmapped when the garbage collector takes the env.
func TestCloseThenDropEnv(t *testing.T) {
	skipIfUnsupported(t)
	runtime.GC()
	maps0 := mappings(t)
	p := vm.MustLoad(exitProg, vm.Options{})
	for range 500 {
		c, err := jit.Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Run(vm.NewEnv(), 0, 0); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for range 100 {
		runtime.GC()
		if mappings(t) <= maps0+8 {
			return
		}
		runtime.Gosched()
	}
	t.Errorf("mappings grew from %d to %d: closed code held by dropped envs is not released", maps0, mappings(t))
}

// TestTailCallIntoItselfThenClose: a program that tail calls into itself
// (through Best, as a program array would) must not keep a reference to
// its own code: closed, it is unmapped once its env moves on.
func TestTailCallIntoItselfThenClose(t *testing.T) {
	skipIfUnsupported(t)
	var self *vm.Program
	hs := testHelpers()
	hs.Register(vm.Helper{ID: 110, Name: "self", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		if !env.TailCall(self) {
			return 1, nil
		}
		return 0, nil
	}})
	self = vm.MustLoad(asm.MustAssemble("add %r6, 1\ncall 110\nmov %r0, %r6\nexit"), vm.Options{Helpers: hs})
	c, ok := jit.Best(self).(*jit.Code)
	if !ok {
		t.Fatal("Best did not compile")
	}
	env := vm.NewEnv()
	if r0, err := c.Run(env, 0, 0); err != nil || r0 != vm.MaxTailCalls+1 {
		t.Fatalf("run: %d, %v", r0, err)
	}
	c.Close()
	other, err := jit.Compile(vm.MustLoad(exitProg, vm.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.Run(env, 0, 0)
	if c.Listing() != nil {
		t.Error("code that tail called into itself is still mapped after Close and its env moved on")
	}
}
