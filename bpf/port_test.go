//go:build linux

package bpf

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
)

// The Go constants mirror port.c's map sizes and program name; no privileges needed.
func TestPortSpecMatchesConstants(t *testing.T) {
	spec, err := loadPort()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps[portMapPortXsks].MaxEntries; got != MaxPortQueues {
		t.Errorf("port xsk map: max entries %d, Go side assumes %d", got, MaxPortQueues)
	}
	if got := spec.Maps[portMapPortCounters].MaxEntries; got != uint32(portVxdpPortReasonVXDP_PORT_REASONS) {
		t.Errorf("port counters: max entries %d, want %d", got, portVxdpPortReasonVXDP_PORT_REASONS)
	}
	if got := spec.Programs[portProgVxdpPort].Name; got != PortProgramName {
		t.Errorf("program name %q, PortProgramName is %q", got, PortProgramName)
	}
}

// loadPortProgram loads a fresh PortProgram and closes it at the end of the test.
func loadPortProgram(t *testing.T) *PortProgram {
	t.Helper()
	requireRoot(t)
	p, err := LoadPort()
	if err != nil {
		t.Fatalf("LoadPort: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// Without a socket every frame, whatever it is, is dropped and counted.
func TestPortNoSocketDrops(t *testing.T) {
	p := loadPortProgram(t)
	for i, frame := range [][]byte{arpFrame(t), vxlan(t, remoteV4, localV4), make([]byte, 14)} {
		ret, err := p.objs.VxdpPort.Run(&ebpf.RunOptions{Data: frame})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if ret != 1 { // XDP_DROP
			t.Errorf("frame %d: action %d, want XDP_DROP (1)", i, ret)
		}
	}
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c != (PortCounters{DropNoSocket: 3}) {
		t.Errorf("counters %+v, want DropNoSocket 3", c)
	}
}

func TestPortSocketRegistrationErrors(t *testing.T) {
	p := loadPortProgram(t)
	if err := p.RegisterSocket(MaxPortQueues, 3); !errors.Is(err, ErrQueueRange) {
		t.Errorf("queue %d: %v, want ErrQueueRange", MaxPortQueues, err)
	}
	if err := p.RegisterSocket(0, -1); err == nil {
		t.Error("negative fd accepted")
	}
	// An fd that is not an AF_XDP socket: the kernel refuses it.
	if err := p.RegisterSocket(0, int(os.Stdin.Fd())); err == nil {
		t.Error("non-AF_XDP fd accepted")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Counters(); !errors.Is(err, ErrClosed) {
		t.Errorf("Counters after Close: %v", err)
	}
	if err := p.Attach(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v", err)
	}
}

// TestPortRedirectToSocket checks the program end to end on a veth: what one end sends
// arrives, whatever it is, on the AF_XDP socket of the other end's queue 0; with the
// program detached by Close the interface has no XDP left.
func TestPortRedirectToSocket(t *testing.T) {
	enterNetns(t, "port")
	// No IPv6 on the new veth, so its own neighbour discovery does not race the frame.
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0); err != nil {
		t.Fatalf("disable ipv6 in the test netns: %v", err)
	}
	vx0, vx1 := addVeth(t)
	idx := vx0.Attrs().Index

	p := loadPortProgram(t)
	if err := p.Attach(idx); err != nil {
		t.Fatal(err)
	}
	if p.Mode() != ModeNative {
		t.Errorf("mode %q on veth, want native", p.Mode())
	}
	if err := p.Attach(idx); !errors.Is(err, ErrAttached) {
		t.Errorf("second Attach: %v, want ErrAttached", err)
	}
	xsk := newTestXSK(t, idx)
	if err := p.RegisterSocket(0, xsk.fd); err != nil {
		t.Fatal(err)
	}
	frame := arpFrame(t)
	copy(frame[6:12], vx1.Attrs().HardwareAddr)
	sendRaw(t, vx1.Attrs().Index, frame)
	got := xsk.receive(t, 2*time.Second)
	if !bytes.Equal(got, frame) {
		t.Fatalf("socket received %x, want the sent frame %x", got, frame)
	}
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Redirected != 1 || c.DropNoSocket != 0 {
		t.Errorf("counters %+v, want Redirected 1", c)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		t.Errorf("XDP still attached after Close: %+v", x)
	}
}
