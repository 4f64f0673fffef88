// Package control is the control protocol between the vswitch daemon and
// its command-line clients: JSON over a Unix stream socket, one request per
// connection. docs/control-protocol.md describes it for other clients.
//
// A client sends one Request as a JSON object terminated by a newline; the
// server answers with one Response line. A response with Stream set is
// followed by raw bytes (a pcap stream, ring buffer records) until either
// side closes the connection.
package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the protocol version; a server refuses other versions.
const Version = 1

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/vswitch/vswitch.sock"

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = "VSWITCH_SOCKET"

// MaxRequest bounds a request line (a program object travels inside it).
const MaxRequest = 64 << 20

// Request is what a client sends.
type Request struct {
	Version int             `json:"version"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Response is what the server answers.
type Response struct {
	Version int             `json:"version"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	// Stream means raw bytes follow the response line.
	Stream bool `json:"stream,omitempty"`
}

// Error codes.
const (
	CodeBadRequest  = "bad_request" // malformed request or parameters
	CodeNotFound    = "not_found"   // no such port, map, key or program
	CodeExists      = "exists"      // already attached, key exists
	CodeInvalid     = "invalid"     // refused: bad object, program fails validation
	CodeUnsupported = "unsupported" // not available here
	CodeBusy        = "busy"        // refused for now by an admission limit: try again
	CodeInternal    = "internal"
)

// Error is an error response; it is also returned by the client as a Go
// error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err if it is (or wraps) an *Error.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Methods.
const (
	MethodPing        = "ping"
	MethodPortAttach  = "port.attach"
	MethodPortDetach  = "port.detach"
	MethodPortShow    = "port.show"
	MethodProgLoad    = "prog.load"
	MethodProgShow    = "prog.show"
	MethodProgDump    = "prog.dump"
	MethodProgLog     = "prog.log"
	MethodMapShow     = "map.show"
	MethodMapDump     = "map.dump"
	MethodMapLookup   = "map.lookup"
	MethodMapUpdate   = "map.update"
	MethodMapDelete   = "map.delete"
	MethodFDBShow     = "fdb.show"
	MethodFDBFlush    = "fdb.flush"
	MethodFDBAdd      = "fdb.add"
	MethodFDBDel      = "fdb.del"
	MethodStats       = "stats"
	MethodCapture     = "capture"
	MethodRingbufRead = "ringbuf.read"
)

// PingResult identifies the daemon.
type PingResult struct {
	Version int       `json:"version"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// PortAttachParams attach an interface (or create a TAP device, or a
// VXLAN tunnel port).
type PortAttachParams struct {
	Name     string `json:"name"`
	Type     string `json:"type,omitempty"` // afpacket (default), afxdp, tap or vxlan
	Create   bool   `json:"create,omitempty"`
	MayExist bool   `json:"may_exist,omitempty"`
	Queues   int    `json:"queues,omitempty"`
	// BusyPoll is how long a worker keeps polling the port after its last
	// frame, as a Go duration ("50us", "2ms"); "0" for none; empty for the
	// daemon's default.
	BusyPoll string `json:"busy_poll,omitempty"`
	// RingFrames is the number of receive ring slots per queue of an
	// afpacket port (default 128), or the size of each ring of an afxdp
	// port's queues (a power of two, default 512).
	RingFrames int `json:"ring_frames,omitempty"`
	// XDPMode is where an afxdp port's XDP program runs: native, generic
	// or auto (default: native where the driver has it).
	XDPMode string `json:"xdp_mode,omitempty"`
	// ZeroCopy is an afxdp port's zero-copy mode: on, off or auto
	// (default: zero-copy where the driver has it).
	ZeroCopy string `json:"zero_copy,omitempty"`
	// VXLAN ports (type vxlan): the VNI (required, 0 to 16777215), the
	// remote VTEPs floods are replicated to, the local underlay address
	// (default: chosen by the route), the UDP port (default 4789) and the
	// outer TTL (default 64).
	VNI     *uint32  `json:"vni,omitempty"`
	Remote  []string `json:"remote,omitempty"`
	Local   string   `json:"local,omitempty"`
	DstPort int      `json:"dstport,omitempty"`
	TTL     int      `json:"ttl,omitempty"`
	// Static are a VXLAN port's static remote stations (fdb.add keeps
	// them here, so that they are saved with the port).
	Static []VXLANStatic `json:"static,omitempty"`
}

// VXLANStatic is a static remote station of a VXLAN port: frames to MAC
// go to VTEP Remote.
type VXLANStatic struct {
	MAC    string `json:"mac"`
	Remote string `json:"remote"`
}

// PortDetachParams detach a port.
type PortDetachParams struct {
	Name     string `json:"name"`
	IfExists bool   `json:"if_exists,omitempty"`
}

// PortDetachResult says what port.detach did.
type PortDetachResult struct {
	// Absent: no such port was attached and IfExists accepted that.
	Absent bool `json:"absent,omitempty"`
}

// PortShowParams select what port.show includes.
type PortShowParams struct {
	Stats bool `json:"stats,omitempty"`
}

// Port describes an attached port.
type Port struct {
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Queues int    `json:"queues"`
	MTU    int    `json:"mtu"`
	Up     bool   `json:"up"`
	Gone   bool   `json:"gone,omitempty"`
	// NotRestored marks a port of the daemon's saved state that could
	// not be attached again at start (Error says why); it keeps its index.
	NotRestored bool       `json:"not_restored,omitempty"`
	Error       string     `json:"error,omitempty"`
	Offload     bool       `json:"offload"`   // takes super-frames and partial checksums as they are
	BusyPoll    string     `json:"busy_poll"` // the port's busy-poll window
	Attached    time.Time  `json:"attached"`
	Stats       *PortStats `json:"stats,omitempty"`

	// XDP describes an afxdp port's mode (native or generic XDP,
	// zero-copy or copy mode, queues, UMEM).
	XDP string `json:"xdp,omitempty"`
	// Notes are the fall-backs an afxdp port took when it was attached.
	Notes []string `json:"notes,omitempty"`
}

// PortStats are a port's counters.
type PortStats struct {
	RxPackets uint64            `json:"rx_packets"`
	RxBytes   uint64            `json:"rx_bytes"`
	TxPackets uint64            `json:"tx_packets"`
	TxBytes   uint64            `json:"tx_bytes"`
	Drops     map[string]uint64 `json:"drops"`
	Port      map[string]uint64 `json:"port"` // the port's own counters (ring drops, offloads)
}

// PortShowResult lists ports.
type PortShowResult struct {
	Ports []Port `json:"ports"`
}

// ProgLoadParams load a program object and install it.
type ProgLoadParams struct {
	Object  []byte `json:"object"` // the ELF file's bytes
	File    string `json:"file"`   // its name, for messages and map names
	Section string `json:"section,omitempty"`
	Engine  string `json:"engine,omitempty"` // jit (default where supported) or interp
	Compat  string `json:"compat,omitempty"` // vale-bpf
}

// Program describes the installed program.
type Program struct {
	ID           uint64            `json:"id"`
	Name         string            `json:"name"`
	File         string            `json:"file"`
	Engine       string            `json:"engine"`
	Instructions int               `json:"instructions"`
	JitedBytes   int               `json:"jited_bytes,omitempty"`
	Maps         []string          `json:"maps"`
	Loaded       time.Time         `json:"loaded"`
	Runs         uint64            `json:"runs"`
	Executed     uint64            `json:"executed_insns"`
	Faults       uint64            `json:"faults"`
	FaultsByKind map[string]uint64 `json:"faults_by_kind,omitempty"`
	Reused       []string          `json:"reused_maps,omitempty"` // maps kept from the previous program
}

// ProgDumpParams select a dump.
type ProgDumpParams struct {
	Kind string `json:"kind"` // xlated or jited
}

// TextResult is a block of text.
type TextResult struct {
	Text string `json:"text"`
}

// LogResult holds trace_printk lines.
type LogResult struct {
	Lines   []string `json:"lines"`
	Dropped uint64   `json:"dropped"`
}

// Map describes a map.
type Map struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	KeySize    uint32 `json:"key_size"`
	ValueSize  uint32 `json:"value_size"`
	MaxEntries uint32 `json:"max_entries"`
	Flags      uint32 `json:"flags,omitempty"`
	Entries    int    `json:"entries"` // -1 where counting does not apply
}

// MapShowResult lists maps.
type MapShowResult struct {
	Maps []Map `json:"maps"`
}

// MapParams name a map and, for lookup/update/delete, a key and value.
type MapParams struct {
	Name  string `json:"name"`
	Key   []byte `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"`
	// Flags: any (default), exist or noexist.
	Flags string `json:"flags,omitempty"`
	// KeyFields and ValueFields give key and value as typed fields, where
	// the object has BTF for them (instead of Key and Value).
	KeyFields   json.RawMessage `json:"key_fields,omitempty"`
	ValueFields json.RawMessage `json:"value_fields,omitempty"`
}

// MapEntry is one entry. For per-CPU maps Value holds every CPU slot's
// value, each padded to 8 bytes; PerCPU and Sum give them per slot and
// added up.
type MapEntry struct {
	Key         []byte          `json:"key"`
	Value       []byte          `json:"value"`
	KeyFields   json.RawMessage `json:"key_fields,omitempty"`
	ValueFields json.RawMessage `json:"value_fields,omitempty"` // not for per-CPU maps: see PerCPU
	// PerCPU (per-CPU maps): the slots of the switch's workers, 0..N-1
	// for N workers, and any other slot that holds a non-zero value.
	PerCPU []CPUValue `json:"percpu,omitempty"`
	// Sum (per-CPU maps): the values of every slot added up: a number for
	// values of 1, 2, 4 or 8 bytes without BTF, else, with BTF, the
	// value's integer fields (others left out) as an object.
	Sum json.RawMessage `json:"sum,omitempty"`
}

// CPUValue is one slot of a per-CPU value: the worker index a program
// sees as its CPU (bpf_get_smp_processor_id) and the slot's value.
type CPUValue struct {
	CPU int `json:"cpu"`
	// Worker: the slot is a current worker's (else it holds what a
	// former worker, or a control-plane update, left there).
	Worker      bool            `json:"worker,omitempty"`
	Value       []byte          `json:"value"`
	ValueFields json.RawMessage `json:"value_fields,omitempty"`
}

// MapDumpResult lists entries.
type MapDumpResult struct {
	Map     Map        `json:"map"`
	Entries []MapEntry `json:"entries"`
}

// FDBEntry is one learned MAC address.
type FDBEntry struct {
	MAC      string  `json:"mac"`
	Port     int     `json:"port"`
	PortName string  `json:"port_name,omitempty"`
	Age      float64 `json:"age_seconds"`
	// Remote is the VTEP a station behind a VXLAN port is reached at
	// (from the port's own table); Static marks entries added with
	// fdb.add, which learning does not change.
	Remote string `json:"remote,omitempty"`
	Static bool   `json:"static,omitempty"`
}

// FDBAddParams add a static entry: station MAC is behind VXLAN port Port,
// at VTEP Remote (what an EVPN control plane pushes).
type FDBAddParams struct {
	MAC    string `json:"mac"`
	Port   string `json:"port"`
	Remote string `json:"remote"`
}

// FDBDelParams delete station MAC (learned or static), from port Port
// only when it is set.
type FDBDelParams struct {
	MAC  string `json:"mac"`
	Port string `json:"port,omitempty"`
}

// FDBResult lists learned addresses.
type FDBResult struct {
	Entries []FDBEntry `json:"entries"`
}

// StatsResult has every counter.
type StatsResult struct {
	Ports   []Port   `json:"ports"`
	Program *Program `json:"program,omitempty"`
}

// CaptureParams start a capture stream of a port (pcap format).
type CaptureParams struct {
	Port    string `json:"port"`
	Snaplen int    `json:"snaplen,omitempty"`
}

// RingbufParams read records of a ring buffer map as a stream of
// length-prefixed (4 bytes, little endian) records. With Fields, each
// record is a JSON RingbufRecord instead of its raw bytes.
type RingbufParams struct {
	Name string `json:"name"`
	// Fields: decode records by the BTF type named Type, else by the
	// ring buffer's __type(value, ...); records stay raw without either.
	Fields bool   `json:"fields,omitempty"`
	Type   string `json:"type,omitempty"`
}

// RingbufResult is the result line of ringbuf.read before the stream:
// the type records are decoded with ("" when they are not).
type RingbufResult struct {
	Type string `json:"type,omitempty"`
}

// RingbufRecord is one record of a ringbuf.read stream with Fields set.
type RingbufRecord struct {
	Record []byte          `json:"record"`
	Fields json.RawMessage `json:"fields,omitempty"`
}
