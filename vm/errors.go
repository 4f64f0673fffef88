package vm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/govswitch/vswitch/asm"
)

// Kind classifies why a run stopped.
type Kind uint8

const (
	_              Kind = iota // invalid
	KindRead                   // load outside the program's regions
	KindWrite                  // store or atomic outside the writable regions
	KindBudget                 // run budget exhausted (instructions and helper work, see Env.Budget)
	KindCallDepth              // more than MaxCallDepth nested local calls
	KindHelper                 // a helper refused its arguments
	KindBadHelper              // callx to a helper that does not exist
	KindTailCall               // tail call chain too long (internal)
	KindDivision               // reserved for ISAs that trap (eBPF does not)
	KindMisaligned             // atomic operation on a misaligned address
	numKinds
)

// NumKinds is one more than the largest Kind, for per-kind counters.
const NumKinds = int(numKinds)

var kindNames = [...]string{
	KindRead:       "out-of-bounds read",
	KindWrite:      "out-of-bounds write",
	KindBudget:     "instruction budget exhausted", // instructions and helper work: see Env.Budget
	KindCallDepth:  "call depth exceeded",
	KindHelper:     "helper failed",
	KindBadHelper:  "call to unknown helper",
	KindTailCall:   "tail call limit reached",
	KindDivision:   "division trap",
	KindMisaligned: "misaligned atomic access",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Sentinel errors a caller can test for with errors.Is on an *Error.
var (
	ErrOutOfBounds = errors.New("memory access out of bounds")
	ErrBudget      = errors.New("run budget exhausted")
	ErrCallDepth   = errors.New("call depth exceeded")
	ErrHelper      = errors.New("helper failed")
)

// Error is a run-time fault. It names the instruction that caused it.
// Runs return a pointer into their Env, so the hot path never allocates:
// copy the value if it must outlive the next run.
type Error struct {
	PC     int             // index of the faulting instruction slot
	Insn   asm.Instruction // the instruction
	Kind   Kind
	Addr   uint64 // the address accessed, for KindRead/KindWrite
	Size   uint64 // the access size, for KindRead/KindWrite
	Helper int32  // the helper, for KindHelper/KindBadHelper
	Err    error  // the helper's error, for KindHelper
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "at insn %d (%s): %s", e.PC, e.Insn, e.Kind)
	switch e.Kind {
	case KindRead, KindWrite, KindMisaligned:
		fmt.Fprintf(&b, " of %d bytes at %#x", e.Size, e.Addr)
	case KindHelper, KindBadHelper:
		fmt.Fprintf(&b, " (helper %d", e.Helper)
		if e.Err != nil {
			fmt.Fprintf(&b, ": %v", e.Err)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrOutOfBounds) and the like work.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutOfBounds:
		return e.Kind == KindRead || e.Kind == KindWrite
	case ErrBudget:
		return e.Kind == KindBudget
	case ErrCallDepth:
		return e.Kind == KindCallDepth
	case ErrHelper:
		return e.Kind == KindHelper || e.Kind == KindBadHelper
	}
	return false
}

func (e *Error) Unwrap() error { return e.Err }

// ValidationError is a load-time refusal. It names the instruction.
type ValidationError struct {
	PC     int
	Insn   asm.Instruction
	Reason string
}

func (e *ValidationError) Error() string {
	if e.PC < 0 {
		return "invalid program: " + e.Reason
	}
	return fmt.Sprintf("invalid program: at insn %d (%s): %s", e.PC, e.Insn, e.Reason)
}

// ErrInvalid is matched by every *ValidationError.
var ErrInvalid = errors.New("invalid program")

func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }
