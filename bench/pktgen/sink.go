package pktgen

// seqWindow is how far behind the newest sequence number of a flow the
// sink still tells a late frame from a duplicate.
const seqWindow = 256

// flowState tracks the sequence numbers of one flow.
type flowState struct {
	next  uint64 // one past the highest sequence number seen
	first uint64 // the first sequence number seen
	// seen has bit d set when sequence number next-1-d arrived, for d <
	// seqWindow.
	seen    [seqWindow / 64]uint64
	started bool
}

// shift moves the window by n sequence numbers (the highest one seen grew
// by n) and marks the new highest one as seen.
func (s *flowState) shift(n uint64) {
	const words = seqWindow / 64
	if n >= seqWindow {
		s.seen = [words]uint64{}
	} else {
		w, b := int(n/64), uint(n%64)
		for i := words - 1; i >= 0; i-- {
			var v uint64
			if j := i - w; j >= 0 {
				v = s.seen[j] << b
				if b > 0 && j-1 >= 0 {
					v |= s.seen[j-1] >> (64 - b)
				}
			}
			s.seen[i] = v
		}
	}
	s.seen[0] |= 1
}

// seqCounters are what the sink found out about sequence numbers.
type seqCounters struct {
	gaps       uint64 // sequence numbers skipped when a higher one arrived
	filled     uint64 // skipped ones that arrived later
	reordered  uint64 // frames that arrived after a higher sequence number
	duplicates uint64
}

// lost is the number of sequence numbers skipped and not seen since.
func (c seqCounters) lost() uint64 {
	if c.filled > c.gaps {
		return 0
	}
	return c.gaps - c.filled
}

// sink classifies received probes per flow. It allocates only when a
// flow id higher than any seen before arrives.
type sink struct {
	flows []flowState
	c     seqCounters
}

func newSink(flows int) *sink {
	return &sink{flows: make([]flowState, flows)}
}

// add accounts one probe. The first frame of a flow starts its sequence:
// frames lost before it are not counted.
func (k *sink) add(flow uint16, seq uint64) {
	if int(flow) >= len(k.flows) {
		n := max(int(flow)+1, 2*len(k.flows))
		n = min(n, MaxFlows)
		k.flows = append(k.flows, make([]flowState, n-len(k.flows))...)
	}
	s := &k.flows[flow]
	switch {
	case !s.started:
		s.started = true
		s.first = seq
		s.next = seq + 1
		s.seen[0] = 1
	case seq >= s.next:
		n := seq - s.next + 1
		k.c.gaps += n - 1
		s.next = seq + 1
		s.shift(n)
	default:
		d := s.next - 1 - seq
		if d < seqWindow {
			w, b := d/64, d%64
			if s.seen[w]&(1<<b) != 0 {
				k.c.duplicates++
				return
			}
			s.seen[w] |= 1 << b
		}
		// Beyond the window a duplicate cannot be told from a late frame:
		// count it as late.
		k.c.reordered++
		if seq >= s.first {
			k.c.filled++
		}
	}
}
