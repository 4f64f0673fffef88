package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/govswitch/vswitch/internal/cli"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/internal/testenv"
)

func readPcap(t *testing.T, b []byte) [][]byte {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("pcap: %v (%d bytes)", err, len(b))
	}
	var frames [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return frames
		}
		frames = append(frames, data)
	}
}

// TestDaemonProcess runs the real binary: it starts, serves the CLI, is
// killed with SIGKILL, restarts over its stale socket, and stops cleanly on
// SIGTERM, removing its socket.
func TestDaemonProcess(t *testing.T) {
	requireNetns(t)
	bin := filepath.Join(testenv.SocketDir(t), "vswitch")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/vswitch").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	topo, err := demo.Build(2)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	sock := filepath.Join(testenv.SocketDir(t), "d.sock")
	ns := nsFile(t, topo)
	defer ns.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "daemon", "--socket", sock, "--netns", "/proc/self/fd/3", "--no-state")
		cmd.ExtraFiles = []*os.File{ns}
		var log bytes.Buffer
		cmd.Stderr = &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(10 * time.Second)
		for {
			var out, errOut bytes.Buffer
			if cli.Main(context.Background(), []string{"--socket", sock, "prog", "show"}, &out, &errOut) == 0 {
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatalf("daemon did not come up: %s\n%s", errOut.String(), log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	vs := func(args ...string) string {
		var out, errOut bytes.Buffer
		if code := cli.Main(context.Background(), append([]string{"--socket", sock}, args...), &out, &errOut); code != 0 {
			t.Fatalf("vswitch %s: %s", strings.Join(args, " "), errOut.String())
		}
		return out.String()
	}
	d := start()
	vs("attach", topo.Ports[0])
	if out := vs("port", "show"); !strings.Contains(out, topo.Ports[0]) {
		t.Fatalf("port show: %s", out)
	}
	d.Process.Signal(syscall.SIGKILL)
	d.Wait()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("a killed daemon leaves its socket behind, expected for the restart test: %v", err)
	}
	d = start() // replaces the stale socket
	vs("attach", topo.Ports[0])
	vs("attach", topo.Ports[1])
	d.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after a clean shutdown: %v", err)
	}
}
