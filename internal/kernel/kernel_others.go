//go:build !linux || mips

package kernel

import (
	"fmt"
	"runtime"
	"time"

	"github.com/govswitch/vswitch/asm"
)

func errPlatform() error {
	return fmt.Errorf("bpf(2) on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrNotSupported)
}

func loadProgram(ProgType, []asm.Instruction) (int, error) { return -1, errPlatform() }

func testRun(int, []byte, uint32) (uint32, []byte, time.Duration, error) {
	return 0, nil, 0, errPlatform()
}

func closeFD(int) error { return errPlatform() }

func createMap(MapType, uint32, uint32, uint32, MapFlags) (int, error) { return -1, errPlatform() }

func mapLookup(int, []byte, []byte) error  { return errPlatform() }
func mapUpdate(int, []byte, []byte) error  { return errPlatform() }
func mapDelete(int, []byte) error          { return errPlatform() }
func mapNextKey(int, []byte, []byte) error { return errPlatform() }

func possibleCPUs() (int, error) { return 1, nil }

func loadProgramFuncs(ProgType, []asm.Instruction) (int, error) { return -1, errPlatform() }
