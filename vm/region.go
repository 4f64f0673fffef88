package vm

// Region is memory a program may access.
//
// A region is either one contiguous block (Stride == 0) of Size bytes, or an
// array of Size/Stride elements (Stride a power of two) of which only the
// first Elem bytes of each element may be touched: that is how the values of
// a map are laid out, so that one region covers every value of a map while a
// program still cannot step from one value into the next.
type Region struct {
	Start    uint64 // address of the first byte
	Size     uint64 // length in bytes
	Stride   uint64 // 0, or the power-of-two distance between elements
	Elem     uint64 // accessible bytes at the start of each element (Stride != 0)
	Writable bool
}

// Contains reports whether the n bytes at addr lie inside r (for a strided
// region: inside one element's accessible bytes). It cannot overflow.
func (r *Region) Contains(addr, n uint64) bool {
	off := addr - r.Start
	if addr < r.Start || off >= r.Size || n > r.Size-off {
		return false
	}
	if r.Stride != 0 {
		in := off & (r.Stride - 1)
		return in < r.Elem && n <= r.Elem-in
	}
	return true
}
