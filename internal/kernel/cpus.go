package kernel

import (
	"fmt"
	"strconv"
	"strings"
)

// parseCPURanges counts the CPUs in a list such as "0-3,8,10-11".
func parseCPURanges(s string) (int, error) {
	n := 0
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		if b < a {
			return 0, fmt.Errorf("cpu list %q: bad range %q", s, r)
		}
		n += b - a + 1
	}
	return n, nil
}
