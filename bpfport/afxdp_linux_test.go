package bpfport

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/bpfport/nettest"
)

func openXDP(t testing.TB, ns *nettest.NS, name string, cfg AFXDPConfig) *AFXDP {
	t.Helper()
	var p *AFXDP
	ns.Do(t, func() (err error) {
		p, err = OpenAFXDP(name, cfg)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

// xdpPair is an AF_XDP port on one end of a veth pair and an AF_PACKET
// port on the other, in two namespaces.
type xdpPair struct {
	nsX, nsP *nettest.NS
	x, p     string
	px       *AFXDP
	pp       *AFPacket
}

func newXDPPair(t testing.TB, cfg AFXDPConfig) *xdpPair {
	t.Helper()
	p := &xdpPair{nsX: nettest.NewNS(t), nsP: nettest.NewNS(t), x: nettest.Name("xdx"), p: nettest.Name("xdp")}
	nettest.Veth(t, p.nsX, p.x, p.nsP, p.p, 0)
	p.px = openXDP(t, p.nsX, p.x, cfg)
	p.pp = openAF(t, p.nsP, p.p, AFPacketConfig{})
	return p
}

// TestAFXDPFrames: frames of 60 and 1514 bytes (and tagged ones) cross
// an AF_XDP port both ways byte for byte, in native and generic mode.
func TestAFXDPFrames(t *testing.T) {
	for _, mode := range []XDPMode{XDPNative, XDPGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			p := newXDPPair(t, AFXDPConfig{XDPMode: mode})
			info := p.px.Info()
			if info.XDPMode != mode.String() || info.ZeroCopy || info.Queues != 1 {
				t.Fatalf("info %+v", info)
			}
			frames := [][]byte{testFrame(60, 1), testFrame(1514, 2), vlanFrame(64, 3), vlanFrame(1518, 4), testFrame(60, 5)}
			sendAll(t, p.pp, 0, frames)
			got := recvTest(t, p.px, 0, len(frames), 3*time.Second)
			if diff := cmp.Diff(frames, got); diff != "" {
				t.Errorf("into AF_XDP: frames (-want +got):\n%s", diff)
			}
			sendAll(t, p.px, 0, frames)
			got = recvTest(t, p.pp, 0, len(frames), 3*time.Second)
			if diff := cmp.Diff(frames, got); diff != "" {
				t.Errorf("out of AF_XDP: frames (-want +got):\n%s", diff)
			}
			s := p.px.Stats()
			if s.TxPackets != uint64(len(frames)) || s.RxKernelDrops != 0 || s.TxErrors != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}
