package maps

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/govswitch/vswitch/vm"
)

// TraceLog keeps the last lines a program printed with bpf_trace_printk:
// a ring of a fixed number of lines of bounded length, so that a program
// printing on every frame costs a bounded amount of memory.
type TraceLog struct {
	mu    sync.Mutex
	lines []TraceLine // ring
	next  uint64      // Seq of the next line
}

// TraceLine is one line of a TraceLog.
type TraceLine struct {
	Seq     uint64 // 0, 1, 2... per log; a gap means lines were overwritten
	Time    time.Time
	CPU     int // the worker that ran the program
	Program string
	Text    string // at most MaxTraceLine bytes, without the trailing newline
}

// Limits of trace logs.
const (
	DefaultTraceLines = 256
	MaxTraceLine      = 256
)

// NewTraceLog returns a log of the last n lines (DefaultTraceLines if n <= 0).
func NewTraceLog(n int) *TraceLog {
	if n <= 0 {
		n = DefaultTraceLines
	}
	return &TraceLog{lines: make([]TraceLine, 0, n)}
}

// Add appends a line, overwriting the oldest when the log is full.
func (l *TraceLog) Add(line TraceLine) {
	if len(line.Text) > MaxTraceLine {
		line.Text = line.Text[:MaxTraceLine]
	}
	l.mu.Lock()
	line.Seq = l.next
	l.next++
	if len(l.lines) < cap(l.lines) {
		l.lines = append(l.lines, line)
	} else {
		l.lines[line.Seq%uint64(cap(l.lines))] = line
	}
	l.mu.Unlock()
}

// Lines returns the lines still held whose Seq is at least since, oldest
// first. Pass the last Seq seen plus one to follow the log.
func (l *TraceLog) Lines(since uint64) []TraceLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.next - uint64(len(l.lines))
	var out []TraceLine
	for s := max(first, since); s < l.next; s++ {
		out = append(out, l.lines[s%uint64(cap(l.lines))])
	}
	return out
}

// TraceLogger is implemented by a vm.Program's Data that provides the
// program's trace log.
type TraceLogger interface {
	TraceLog() *TraceLog
}

var traceLogs struct {
	sync.Mutex
	m map[weak.Pointer[vm.Program]]*TraceLog
}

// TraceLogOf returns the log bpf_trace_printk writes to for p: p.Data if it
// is a *TraceLog or a TraceLogger, else a log created on first use and
// forgotten when p is garbage collected.
func TraceLogOf(p *vm.Program) *TraceLog {
	switch d := p.Data.(type) {
	case *TraceLog:
		return d
	case TraceLogger:
		if l := d.TraceLog(); l != nil {
			return l
		}
	}
	k := weak.Make(p)
	traceLogs.Lock()
	defer traceLogs.Unlock()
	if l, ok := traceLogs.m[k]; ok {
		return l
	}
	if traceLogs.m == nil {
		traceLogs.m = make(map[weak.Pointer[vm.Program]]*TraceLog)
	}
	l := NewTraceLog(0)
	traceLogs.m[k] = l
	runtime.AddCleanup(p, func(k weak.Pointer[vm.Program]) {
		traceLogs.Lock()
		delete(traceLogs.m, k)
		traceLogs.Unlock()
	}, k)
	return l
}

// formatTrace formats a bpf_trace_printk line the way Linux does for the
// conversions it accepts here: %d %i %u %x %X %c %p %% with the l and ll
// modifiers, flags "-+ #0" and a width; at most three arguments. %s is
// refused (a program's strings would be read from arbitrary addresses).
func formatTrace(format []byte, args [3]uint64) (string, bool) {
	out := make([]byte, 0, 64)
	n := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			out = append(out, '%')
			continue
		}
		var left, zero, plus, space, alt bool
	flags:
		for ; i < len(format); i++ {
			switch format[i] {
			case '-':
				left = true
			case '0':
				zero = true
			case '+':
				plus = true
			case ' ':
				space = true
			case '#':
				alt = true
			default:
				break flags
			}
		}
		width := 0
		for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
			width = width*10 + int(format[i]-'0')
			if width > 64 {
				return "", false
			}
		}
		long := 0
		for ; i < len(format) && format[i] == 'l' && long < 2; i++ {
			long++
		}
		if i >= len(format) || n >= 3 {
			return "", false
		}
		a := args[n]
		n++
		if long == 0 {
			a = uint64(uint32(a))
		}
		var s string
		switch format[i] {
		case 'd', 'i':
			v := int64(a)
			if long == 0 {
				v = int64(int32(a))
			}
			s = strconv.FormatInt(v, 10)
			if v >= 0 && plus {
				s = "+" + s
			} else if v >= 0 && space {
				s = " " + s
			}
		case 'u':
			s = strconv.FormatUint(a, 10)
		case 'x', 'X':
			s = strconv.FormatUint(a, 16)
			if format[i] == 'X' {
				s = upper(s)
			}
			if alt && a != 0 {
				s = "0x" + s
			}
		case 'c':
			s = string(rune(byte(a)))
		case 'p':
			s = "0x" + strconv.FormatUint(args[n-1], 16)
		default:
			return "", false
		}
		if pad := width - len(s); pad > 0 {
			switch {
			case left:
				s += strings.Repeat(" ", pad)
			case zero && (s[0] == '-' || s[0] == '+' || s[0] == ' '):
				s = s[:1] + strings.Repeat("0", pad) + s[1:]
			case zero:
				s = strings.Repeat("0", pad) + s
			default:
				s = strings.Repeat(" ", pad) + s
			}
		}
		out = append(out, s...)
		if len(out) > MaxTraceLine {
			break
		}
	}
	return string(out), true
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

var timeNow = time.Now
