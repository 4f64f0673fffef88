package scenario

import (
	"time"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
)

// setupVswitchAFXDP runs a daemon in t's switch namespace with both
// veths attached as AF_XDP ports and learn.o installed, and waits until it
// learned where the sink is.
func setupVswitchAFXDP(t *topo, s *subject) error {
	d := daemon.New(daemon.Config{Netns: t.sw})
	s.teardown = func() { d.Close() }
	if _, err := d.LoadDefault(""); err != nil {
		return err
	}
	for _, dev := range []string{devSwIn, devSwOut} {
		if _, err := d.Attach(control.PortAttachParams{Name: dev, Type: "afxdp"}); err != nil {
			return err
		}
	}
	if err := announceSink(t); err != nil {
		return err
	}
	var mac [6]byte
	copy(mac[:], sinkMAC)
	return waitLearned(d, mac, 2*time.Second)
}
