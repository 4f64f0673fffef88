package scenario

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestEchoRequest: the request carries id and sequence, its checksum
// verifies (the one's complement sum over the message is 0xffff), and a
// reply to it (type 0, as a kernel answers) parses back, with or without
// the IPv4 header a raw socket delivers.
func TestEchoRequest(t *testing.T) {
	for _, n := range []int{8, 63, echoLen} {
		b := make([]byte, n)
		echoRequest(b, 0xbeef, 0x1234)
		if b[0] != 8 || b[1] != 0 {
			t.Fatalf("type/code %d/%d", b[0], b[1])
		}
		var sum uint32
		for i := 0; i < len(b); i += 2 {
			v := uint32(b[i]) << 8
			if i+1 < len(b) {
				v |= uint32(b[i+1])
			}
			sum += v
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		if sum != 0xffff {
			t.Errorf("%d bytes: checksum does not verify (sum %#x)", n, sum)
		}
		reply := append([]byte(nil), b...)
		reply[0] = 0
		ip := append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 99, 0, 2, 10, 99, 0, 1}, reply...)
		for _, msg := range [][]byte{reply, ip} {
			id, seq, ok := echoReply(msg)
			if !ok || id != 0xbeef || seq != 0x1234 {
				t.Errorf("%d bytes: echoReply = %#x %#x %v", len(msg), id, seq, ok)
			}
		}
		if _, _, ok := echoReply(b); ok {
			t.Error("a request parsed as a reply")
		}
	}
	if _, _, ok := echoReply([]byte{0x4f, 0, 0}); ok {
		t.Error("a truncated message parsed")
	}
}

// TestRxTime reads the receive timestamp out of a control message laid
// out as the kernel writes it.
func TestRxTime(t *testing.T) {
	ts := make([]byte, 16)
	binary.NativeEndian.PutUint64(ts, 1700000000)
	binary.NativeEndian.PutUint64(ts[8:], 123456789)
	h := unix.Cmsghdr{Level: unix.SOL_SOCKET, Type: unix.SCM_TIMESTAMPNS}
	h.SetLen(unix.CmsgLen(len(ts)))
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, h); err != nil {
		t.Fatal(err)
	}
	oob := make([]byte, unix.CmsgSpace(len(ts)))
	copy(oob, b.Bytes())
	copy(oob[unix.CmsgLen(0):], ts)
	if got, want := rxTime(oob), int64(1700000000123456789); got != want {
		t.Errorf("rxTime = %d, want %d", got, want)
	}
	if got := rxTime(nil); got != 0 {
		t.Errorf("no control message: %d", got)
	}
}

func TestQuantile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 200; i++ {
		v = append(v, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 100}, {0.99, 198}, {1, 200}, {0, 1}} {
		if got := quantile(v, c.q); got != c.want {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if got := quantile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("one sample: %v", got)
	}
}

// TestReadProc reads this process's own figures.
func TestReadProc(t *testing.T) {
	st, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.rssKB == 0 || st.threads == 0 {
		t.Errorf("%+v", st)
	}
	// Burn some CPU so that the count moves.
	c0 := procCPU(os.Getpid())
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
	}
	if c1 := procCPU(os.Getpid()); c0 < 0 || c1 < c0 {
		t.Errorf("procCPU %d then %d", c0, c1)
	}
	if _, err := readProc(-1); err == nil {
		t.Error("no error for a missing process")
	}
	if procCPU(-1) != -1 {
		t.Error("procCPU of a missing process")
	}
}

func TestRelativeToBridge(t *testing.T) {
	rs := []HostsResult{
		{Switch: VswitchJIT, Measure: MeasureRTT, Rate: 20, P50: 200},
		{Switch: VswitchJIT, Measure: MeasureRTT, Rate: 500, P50: 60},
		{Switch: VswitchJIT, Measure: MeasureTCP, Gbps: 5},
		{Switch: OVSAFPacket, Measure: MeasureTCP, Skipped: "skipped"},
		{Switch: Bridge, Measure: MeasureRTT, Rate: 20, P50: 50},
		{Switch: Bridge, Measure: MeasureRTT, Rate: 500, Skipped: "error: x"},
		{Switch: Bridge, Measure: MeasureTCP, Gbps: 10},
	}
	relativeToBridge(rs)
	var got []float64
	for _, r := range rs {
		got = append(got, r.XBridge)
	}
	if diff := cmp.Diff([]float64{4, 0, 0.5, 0, 1, 0, 1}, got); diff != "" {
		t.Errorf("XBridge (-want +got):\n%s", diff)
	}
}
