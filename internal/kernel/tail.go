package kernel

import (
	"encoding/binary"
	"fmt"

	"github.com/govswitch/vswitch/asm"
)

// RunTailCalls runs a set of programs that make tail calls: progs[k] is
// loaded (as XDP, with BTF function information, see LoadProgramFuncs)
// into slot k of map[0], a program array of slots entries (nil leaves
// the slot empty); map[1] is an array of one zeroed element of valueSize
// bytes. It runs progs[0] once on a 64-byte packet and returns its
// result and map[1]'s element after the run.
func RunTailCalls(progs [][]asm.Instruction, slots, valueSize int) (uint32, []byte, error) {
	if len(progs) == 0 || progs[0] == nil || len(progs) > slots {
		return 0, nil, fmt.Errorf("run tail calls: %d programs for %d slots, the first one needed", len(progs), slots)
	}
	array, err := CreateMap(ProgArray, 4, 4, uint32(slots), 0)
	if err != nil {
		return 0, nil, err
	}
	defer array.Close()
	data, err := CreateMap(Array, 4, uint32(valueSize), 1, 0)
	if err != nil {
		return 0, nil, err
	}
	defer data.Close()
	loaded := make([]*Program, len(progs))
	defer func() {
		for _, p := range loaded {
			p.Close()
		}
	}()
	key := make([]byte, 4)
	for k, insns := range progs {
		if insns == nil {
			continue
		}
		p, err := LoadProgramFuncs(XDP, insns, []*Map{array, data})
		if err != nil {
			return 0, nil, fmt.Errorf("program %d: %w", k, err)
		}
		loaded[k] = p
		fd := make([]byte, 4)
		binary.LittleEndian.PutUint32(fd, uint32(p.FD()))
		binary.LittleEndian.PutUint32(key, uint32(k))
		if err := array.Update(key, fd); err != nil {
			return 0, nil, fmt.Errorf("program %d into slot %d: %w", k, k, err)
		}
	}
	ret, _, _, err := loaded[0].TestRun(make([]byte, 64), 1)
	if err != nil {
		return 0, nil, err
	}
	value := make([]byte, valueSize)
	if err := data.Lookup(make([]byte, 4), value); err != nil {
		return 0, nil, err
	}
	return ret, value, nil
}
