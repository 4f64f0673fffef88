package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/govswitch/vswitch/internal/testenv"
)

// The documentation's commands run here, as a reader would type them:
// every `vswitch` line of every ```sh block of README.md and docs/*.md, and
// the vswitch commands in the comments of examples/*.c, each file against
// a daemon of its own in a network namespace of its own that has the
// interfaces the docs use (veth0, veth1). Blocks tagged file=NAME (```json
// file=vswitch.json, ```hex file=frame.bin) are written to NAME first.
// Other lines of a block (go build, clang, make) are not run: they need
// tools tests must not depend on, and ./vswitch is the test's build.
//
// Commands run with sh inside the namespace (ip netns exec), in a folder
// where ./vswitch and vswitch are this build and examples/ and docs/ are
// the repository's, with $VSWITCH_SOCKET pointing at the file's daemon.
// `vswitch daemon ... &` (re)starts that daemon; commands that run until
// Ctrl-C (capture, map read) are interrupted once they have shown they
// work; every command must exit 0.

// docCommand is one command of a document.
type docCommand struct {
	line  string // as in the document
	where string
}

type docFile struct {
	name     string
	files    map[string][]byte // file=NAME blocks
	commands []docCommand
	setup    []string // commands run before the document's (examples' program loads)
}

var fence = regexp.MustCompile("^\\s*```\\s*(\\S*)\\s*(.*)$")

// socatLine is a raw protocol request piped into the socket; the test
// sends it itself (socat is not a test dependency).
var socatLine = regexp.MustCompile(`^echo '(.*)' \| socat - UNIX-CONNECT:\S+$`)

// markdownCommands extracts the vswitch lines and file= blocks of a
// markdown document.
func markdownCommands(t *testing.T, path string) docFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	df := docFile{name: path, files: map[string][]byte{}}
	var in bool
	var lang, file string
	var body strings.Builder
	for n, line := range strings.Split(string(b), "\n") {
		m := fence.FindStringSubmatch(line)
		if m != nil && !in {
			in, lang, file = true, m[1], ""
			if f, ok := strings.CutPrefix(m[2], "file="); ok {
				file = f
			}
			body.Reset()
			continue
		}
		if m != nil && in && m[1] == "" {
			in = false
			if file != "" {
				data := []byte(body.String())
				if lang == "hex" {
					data, err = hex.DecodeString(strings.Join(strings.Fields(body.String()), ""))
					if err != nil {
						t.Fatalf("%s: block %s: %v", path, file, err)
					}
				}
				df.files[file] = data
				// A file the docs ship (docs/vswitch.json) is what the
				// page shows.
				if shipped, err := os.ReadFile(filepath.Join(filepath.Dir(path), file)); err == nil && !bytes.Equal(shipped, data) {
					t.Errorf("%s: the %s block differs from %s", path, file, filepath.Join(filepath.Dir(path), file))
				}
			}
			continue
		}
		if !in {
			continue
		}
		body.WriteString(line + "\n")
		if lang != "sh" {
			continue
		}
		cmd := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "$ "))
		if strings.HasPrefix(cmd, "vswitch ") || strings.HasPrefix(cmd, "./vswitch ") || socatLine.MatchString(cmd) {
			df.commands = append(df.commands, docCommand{cmd, fmt.Sprintf("%s:%d", path, n+1)})
		}
	}
	return df
}

// exampleCommands extracts the vswitch commands of a C example's comment;
// they run with the example loaded.
func exampleCommands(t *testing.T, path string) docFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj := strings.TrimSuffix(path, ".c") + ".o"
	df := docFile{name: path, files: map[string][]byte{}, setup: []string{"vswitch prog load examples/" + filepath.Base(obj)}}
	for n, line := range strings.Split(string(b), "\n") {
		cmd := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if strings.HasPrefix(cmd, "vswitch ") {
			df.commands = append(df.commands, docCommand{cmd, fmt.Sprintf("%s:%d", path, n+1)})
		}
	}
	return df
}

// TestDocCommands runs the documentation's commands (as root).
func TestDocCommands(t *testing.T) {
	if err := netenv.Check(); err != nil {
		t.Skipf("the documentation's commands %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the documentation's commands need iproute2 (ip netns) to make their namespace")
	}
	bin := filepath.Join(t.TempDir(), "vswitch")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/vswitch").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	docs := []docFile{markdownCommands(t, "../../README.md")}
	mds, _ := filepath.Glob("../../docs/*.md")
	for _, md := range mds {
		docs = append(docs, markdownCommands(t, md))
	}
	cs, _ := filepath.Glob("../../examples/*.c")
	for _, c := range cs {
		docs = append(docs, exampleCommands(t, c))
	}
	total := 0
	for _, df := range docs {
		total += len(df.commands)
		if len(df.commands) == 0 {
			continue
		}
		t.Run(strings.TrimPrefix(df.name, "../../"), func(t *testing.T) { runDoc(t, bin, df) })
	}
	if total < 30 {
		t.Errorf("only %d documented commands found: is the extraction broken?", total)
	}
}

// docEnv is the namespace, folder and daemon one document runs in.
type docEnv struct {
	ns, dir, socket string
	bin             string
	daemon          *exec.Cmd
	daemonDone      chan struct{} // closed when daemon exited
	daemonLog       syncBuffer
}

// syncBuffer is a bytes.Buffer the daemon's output goroutine and the
// test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func runDoc(t *testing.T, bin string, df docFile) {
	e := &docEnv{bin: bin, dir: testenv.SocketDir(t)}
	e.socket = filepath.Join(e.dir, "vswitch.sock")
	e.ns = fmt.Sprintf("vsdoc-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", ".", "-").Replace(filepath.Base(df.name)))
	if out, err := exec.Command("ip", "netns", "add", e.ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", e.ns).Run() })
	for _, c := range []string{
		"sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
		"ip link set lo up",
		"ip link add veth0 type veth peer name veth0p",
		"ip link add veth1 type veth peer name veth1p",
		"ip link set veth0 up", "ip link set veth0p up", "ip link set veth1 up", "ip link set veth1p up",
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", e.ns}, strings.Fields(c)...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", c, err, out)
		}
	}
	root, _ := filepath.Abs("../..")
	for _, l := range []string{"examples", "docs"} {
		if err := os.Symlink(filepath.Join(root, l), filepath.Join(e.dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, filepath.Join(e.dir, "vswitch")); err != nil {
		t.Fatal(err)
	}
	for name, data := range df.files {
		if err := os.WriteFile(filepath.Join(e.dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(e.stopDaemon)
	started := false
	for _, c := range df.setup {
		if !started {
			e.startDaemon(t, "vswitch daemon", df.name)
			started = true
		}
		e.run(t, docCommand{c, df.name + " (setup)"})
	}
	for _, c := range df.commands {
		if isDaemon(c.line) {
			e.startDaemon(t, c.line, c.where)
			started = true
			continue
		}
		if !started && needsDaemon(c.line) {
			e.startDaemon(t, "vswitch daemon", c.where)
			started = true
		}
		e.run(t, c)
	}
}

func isDaemon(line string) bool {
	f := strings.Fields(line)
	return len(f) > 1 && f[1] == "daemon"
}

// needsDaemon: commands that work without a daemon do not start one.
func needsDaemon(line string) bool {
	if socatLine.MatchString(line) {
		return true
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return false
	}
	switch f[1] {
	case "help", "version", "pktgen", "bench", "demo", "completion", "--help", "--version", "-h":
		return false
	case "prog":
		return len(f) < 3 || f[2] != "run"
	}
	return true
}

// startDaemon starts (or restarts) the document's daemon with line, which
// ends in & in the document.
func (e *docEnv) startDaemon(t *testing.T, line, where string) {
	t.Helper()
	e.stopDaemon()
	line = strings.TrimSpace(strings.TrimSuffix(stripComment(line), "&"))
	e.daemonLog.Reset()
	e.daemon = e.command(line)
	e.daemon.Stdout, e.daemon.Stderr = &e.daemonLog, &e.daemonLog
	if err := e.daemon.Start(); err != nil {
		t.Fatalf("%s: %s: %v", where, line, err)
	}
	exited := make(chan struct{})
	e.daemonDone = exited
	go func() { e.daemon.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	c := &control.Client{Path: e.socket, Timeout: time.Second}
	for c.Call(context.Background(), control.MethodPing, nil, nil) != nil {
		select {
		case <-exited:
			t.Fatalf("%s: %s exited: %s", where, line, e.daemonLog.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: no daemon on the socket after 30s: %s", where, line, e.daemonLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *docEnv) stopDaemon() {
	if e.daemon == nil || e.daemon.Process == nil {
		return
	}
	syscall.Kill(-e.daemon.Process.Pid, syscall.SIGTERM)
	select {
	case <-e.daemonDone:
	case <-time.After(20 * time.Second):
		syscall.Kill(-e.daemon.Process.Pid, syscall.SIGKILL)
		<-e.daemonDone
	}
	e.daemon = nil
}

func stripComment(line string) string {
	// A # after a space starts a shell comment (none of the documented
	// commands has # inside quotes).
	if i := strings.Index(line, " #"); i >= 0 {
		return line[:i]
	}
	return line
}

// command is sh -c line inside the namespace, in its own process group.
func (e *docEnv) command(line string) *exec.Cmd {
	cmd := exec.Command("ip", "netns", "exec", e.ns, "sh", "-c", line)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "PATH="+e.dir+":"+os.Getenv("PATH"), control.SocketEnv+"="+e.socket,
		daemon.StateDirEnv+"="+filepath.Join(e.dir, "state")) // a documented `vswitch daemon` never touches /var/lib/vswitch
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// untilInterrupted: commands that run until Ctrl-C.
func untilInterrupted(line string) bool {
	f := strings.Fields(stripComment(line))
	return len(f) > 2 && (f[1] == "capture" || f[1] == "map" && f[2] == "read")
}

func (e *docEnv) run(t *testing.T, c docCommand) {
	t.Helper()
	if m := socatLine.FindStringSubmatch(c.line); m != nil {
		e.request(t, c, m[1])
		return
	}
	line := stripComment(c.line)
	run := line
	if untilInterrupted(line) && !strings.Contains(line, "|") {
		run = "exec " + line // Ctrl-C reaches vswitch, not sh
	}
	cmd := e.command(run)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %s: %v", c.where, line, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	limit := 120 * time.Second
	if untilInterrupted(line) {
		// It works once it is streaming: a capture file has its pcap
		// header; a ring buffer reader has said it reads (its SIGINT
		// handler is in place: a signal before it would kill it).
		e.waitStreaming(line, &out, exited)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		limit = 20 * time.Second
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("%s: %s: %v\n%s\ndaemon: %s", c.where, line, err, out.String(), e.daemonLog.String())
		} else {
			t.Logf("%s: %s\n%s", c.where, line, firstLines(out.String(), 8))
		}
	case <-time.After(limit):
		// Ctrl-C first, so that it cleans up what it made; then kill.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		t.Errorf("%s: %s: still running after %v\n%s", c.where, line, limit, out.String())
	}
}

// request sends a documented protocol request line to the daemon and
// checks that the answer is a result, not an error.
func (e *docEnv) request(t *testing.T, c docCommand, req string) {
	t.Helper()
	conn, err := net.DialTimeout("unix", e.socket, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", c.where, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte(req + "\n")); err != nil {
		t.Fatalf("%s: %v", c.where, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	var resp control.Response
	if err != nil || json.Unmarshal(line, &resp) != nil || resp.Error != nil || len(resp.Result) == 0 {
		t.Errorf("%s: %s: answer %q, %v", c.where, req, line, err)
	}
}

func (e *docEnv) waitStreaming(line string, out *syncBuffer, exited chan error) {
	deadline := time.Now().Add(10 * time.Second)
	f := strings.Fields(line)
	file := ""
	for i, a := range f {
		if (a == "-w" || a == "--write") && i+1 < len(f) && f[i+1] != "-" {
			file = filepath.Join(e.dir, f[i+1])
		}
	}
	for time.Now().Before(deadline) {
		if file != "" {
			if st, err := os.Stat(file); err == nil && st.Size() >= 24 {
				return
			}
		} else if strings.Contains(out.String(), "Ctrl-C to stop") {
			return // the reader streams (and handles Ctrl-C)
		}
		select {
		case err := <-exited:
			exited <- err // let run report it
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func firstLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var out []string
	for len(out) < n && sc.Scan() {
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}
