package examples_test

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/testenv"
	"github.com/govswitch/vswitch/loader"
	"github.com/govswitch/vswitch/maps"
)

// kernelProgram is an XDP build of an example (examples/xdp/*.o) loaded
// into the kernel, with kernel maps made from the same specs.
type kernelProgram struct {
	prog *kernel.Program
	maps map[string]*kernel.Map
}

// loadKernel loads examples/xdp/name.o through our loader (which resolves
// the ELF) and then into the kernel: program `prog`, the maps it uses
// created in the kernel with the same specs and initial contents.
func loadKernel(t testing.TB, name, prog string) *kernelProgram {
	t.Helper()
	c := load(t, "xdp/"+name+".o", loader.Options{})
	p := c.Programs[prog]
	kp := &kernelProgram{maps: map[string]*kernel.Map{}}
	var kmaps []*kernel.Map
	for _, m := range p.Maps() {
		mm := m.(maps.Map)
		s := mm.Spec()
		km, err := kernel.CreateMap(kernel.MapType(s.Type), s.KeySize, s.ValueSize, s.MaxEntries, kernel.MapFlags(s.Flags))
		if err != nil {
			testenv.Skip(t, "kernel map %s: %v", s.Name, err)
		}
		t.Cleanup(func() { km.Close() })
		if s.Type == maps.Array && s.MaxEntries == 1 { // global data: copy the initial value
			if v, err := mm.Lookup(make([]byte, 4)); err == nil {
				if err := km.Update(make([]byte, 4), v); err != nil {
					t.Fatal(err)
				}
			}
		}
		kp.maps[s.Name] = km
		kmaps = append(kmaps, km)
	}
	kprog, err := kernel.LoadProgramWithMaps(kernel.XDP, p.Instructions(), kmaps)
	if err != nil {
		t.Fatalf("kernel refused xdp/%s.o %s: %v", name, prog, err)
	}
	t.Cleanup(func() { kprog.Close() })
	kp.prog = kprog
	return kp
}

// run runs a frame through the kernel: the XDP build reads the ingress
// port from an 8-byte header and writes its decision after it.
func (k *kernelProgram) run(t *testing.T, fr []byte, ingress uint32) uint64 {
	t.Helper()
	in := append(binary.LittleEndian.AppendUint32(make([]byte, 0, 8+len(fr)), ingress), 0, 0, 0, 0)
	in = append(in, fr...)
	ret, out, _, err := k.prog.TestRun(in, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ret != 2 || len(out) < 8 {
		t.Fatalf("kernel run returned %d with %d bytes", ret, len(out))
	}
	return uint64(binary.LittleEndian.Uint32(out[4:]))
}

// TestKernelAgrees runs the same frames through vswitch's engines and the
// kernel's (BPF_PROG_TEST_RUN on the XDP build of the same source) and
// compares the decisions step by step.
func TestKernelAgrees(t *testing.T) {
	testenv.Need(t, "kernel eBPF (needs Linux and root)", kernel.Available())
	type setup func(update func(m string, k, v []byte))
	for _, tc := range []struct {
		name, prog string
		setup      setup
		frames     []step
	}{
		{"learn", "learn", nil, []step{
			{"A->B", frame(t, macA, macB, 0, nil), 1, flood},
			{"B->A", frame(t, macB, macA, 0, nil), 2, 1},
			{"A->B", frame(t, macA, macB, 0, nil), 1, 2},
			{"bcast", frame(t, macC, bcast, 0, nil), 3, flood},
			{"own port", frame(t, macC, macA, 0, nil), 1, drop},
		}},
		{"static", "static_fwd", func(u func(string, []byte, []byte)) {
			u("ports", le32(0x0b), append(le32(3), le32(1)...))
		}, []step{
			{"to B", frame(t, macA, macB, 0, nil), 1, 3},
			{"to C", frame(t, macA, macC, 0, nil), 1, flood},
			{"bcast", frame(t, macA, bcast, 0, nil), 1, flood},
		}},
		{"vlan", "vlan", func(u func(string, []byte, []byte)) {
			u("port_vlan", le32(1), le32(10))
			u("port_vlan", le32(2), le32(10))
			u("port_vlan", le32(3), le32(20))
			u("vlan_members", le32(10), portset(1, 2, 4))
			u("vlan_members", le32(20), portset(3, 4))
		}, []step{
			{"bcast v10", frame(t, macA, bcast, 0, nil), 1, flood},
			{"B->A v10", frame(t, macB, macA, 0, nil), 2, 1},
			{"tagged 20 on 1", frame(t, macA, macB, 20, nil), 1, drop},
			{"trunk 10 to A", frame(t, macC, macA, 10, nil), 4, 1},
			{"A in v20", frame(t, macB, macA, 20, nil), 3, flood},
		}},
		{"count", "count", nil, []step{
			{"ipv4", frame(t, macA, macB, 0, net.IP{192, 0, 2, 1}), 1, flood},
			{"arp", frame(t, macA, bcast, 0, nil), 2, flood},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := loadKernel(t, tc.name, tc.prog)
			c := load(t, tc.name+".o", loader.Options{})
			s := newSim(t, engines[0], c.Programs[tc.prog])
			if tc.setup != nil {
				tc.setup(func(m string, key, v []byte) {
					if err := c.Maps[m].Update(key, v, maps.UpdateAny); err != nil {
						t.Fatal(err)
					}
					if err := k.maps[m].Update(key, v); err != nil {
						t.Fatal(err)
					}
				})
			}
			for _, st := range tc.frames {
				ours, theirs := s.run(st.frame, st.ingress), k.run(t, st.frame, st.ingress)
				if ours != theirs || ours != st.want {
					t.Errorf("%s: vswitch %d, kernel %d, want %d", st.name, ours, theirs, st.want)
				}
			}
		})
	}
}
