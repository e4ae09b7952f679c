//go:build linux

package main

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/topo"
)

// ecnPort is the inner UDP port of TestECNDecapsulation's datagrams; ecnDSCP their inner
// DSCP, which decapsulation must leave alone.
const (
	ecnPort = 7788
	ecnDSCP = 0x28 << 2
)

// ecnWire builds the VXLAN frames one host's kernel would send toward the other's VTEP,
// with chosen outer and inner ECN fields.
type ecnWire struct {
	srcMAC, dstMAC     net.HardwareAddr // wire ends: sender, receiver
	src, dst           net.IP           // underlay addresses: sender, receiver
	innerSrcMAC        net.HardwareAddr // a container behind the sender that does not exist
	innerDstMAC        net.HardwareAddr // the receiving container's eth0
	innerSrc, innerDst net.IP
	vni                uint32
	port               uint16
}

// frame is VXLAN with outer ECN outer carrying UDP with inner ECN inner whose payload
// names the combination: "ecn:OI".
func (w *ecnWire) frame(outer, inner uint8) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, TOS: ecnDSCP | inner, Protocol: layers.IPProtocolUDP, SrcIP: w.innerSrc, DstIP: w.innerDst}
	udp := &layers.UDP{SrcPort: 40000, DstPort: ecnPort}
	udp.SetNetworkLayerForChecksum(ip)
	in := serializeLayers(&layers.Ethernet{SrcMAC: w.innerSrcMAC, DstMAC: w.innerDstMAC, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload(fmt.Sprintf("ecn:%d%d", outer, inner)))
	oip := &layers.IPv4{Version: 4, TTL: 64, TOS: outer, Id: uint16(outer<<2 | inner), Protocol: layers.IPProtocolUDP, SrcIP: w.src, DstIP: w.dst}
	oudp := &layers.UDP{SrcPort: layers.UDPPort(50000 + int(outer<<2|inner)), DstPort: layers.UDPPort(w.port)}
	oudp.SetNetworkLayerForChecksum(oip)
	f := serializeLayers(&layers.Ethernet{SrcMAC: w.srcMAC, DstMAC: w.dstMAC, EthernetType: layers.EthernetTypeIPv4},
		oip, oudp, &layers.VXLAN{ValidIDFlag: true, VNI: w.vni}, gopacket.Payload(in))
	f[14+20+6], f[14+20+7] = 0, 0 // no outer UDP checksum, as the kernel sends by default
	return f
}

// recvTOS opens a UDP socket in container ns on ecnPort that reports each datagram's
// IP TOS byte (IP_RECVTOS), and returns the TOS it saw per combination until stop.
func recvTOS(t *testing.T, ns topo.NS) (stop func() map[string]uint8) {
	t.Helper()
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTOS, 1); err != nil {
			return fmt.Errorf("IP_RECVTOS: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Port: ecnPort})
	})
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	got := map[string]uint8{}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		buf, oob := make([]byte, 256), make([]byte, 256)
		for {
			n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil {
				select {
				case <-done:
					return
				default:
					continue
				}
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) > 0 {
					got[string(buf[:n])] = m.Data[0]
				}
			}
		}
	}()
	return func() map[string]uint8 {
		time.Sleep(300 * time.Millisecond) // what is on its way
		close(done)
		<-finished
		unix.Close(fd)
		return got
	}
}

// TestECNDecapsulation injects VXLAN frames on the wire with every combination of outer
// and inner ECN field of RFC 6040's decapsulation table, toward vxdp on host B and toward
// the kernel's vxlan on host A, and reads the TOS each container's socket receives
// (IP_RECVTOS). vxdp must deliver what the kernel delivers: CE over ECT(0) or ECT(1) marks
// the inner packet CE, ECT(1) over ECT(0) gives ECT(1), CE over Not-ECT is dropped (and
// counted, ecn_ce_not_ect), every other combination arrives as it was sent, DSCP untouched.
func TestECNDecapsulation(t *testing.T) {
	needRoot(t)
	tp, _ := kernelToVXDP(t, "ecn", "")
	macA, macB := ifaceMAC(t, tp.HostA, tp.WireA), ifaceMAC(t, tp.HostB, tp.WireB)
	toVXDP := &ecnWire{srcMAC: macA, dstMAC: macB, src: tp.UnderlayA.Addr().AsSlice(), dst: tp.UnderlayB.Addr().AsSlice(),
		innerSrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 0x77}, innerDstMAC: ifaceMAC(t, tp.ContainerB, "eth0"),
		innerSrc: net.IPv4(10, 42, 0, 77).To4(), innerDst: tp.OverlayB.Addr().AsSlice(), vni: tp.VNI, port: tp.Port}
	toKernel := &ecnWire{srcMAC: macB, dstMAC: macA, src: tp.UnderlayB.Addr().AsSlice(), dst: tp.UnderlayA.Addr().AsSlice(),
		innerSrcMAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 0x78}, innerDstMAC: ifaceMAC(t, tp.ContainerA, topo.ContainerVethIf),
		innerSrc: net.IPv4(10, 42, 0, 78).To4(), innerDst: tp.OverlayA.Addr().AsSlice(), vni: tp.VNI, port: tp.Port}

	before, ok := scrape(t, tp.HostB, dataplane.DefaultAdmin)
	if !ok {
		t.Fatal("no admin server")
	}
	stopB, stopA := recvTOS(t, tp.ContainerB), recvTOS(t, tp.ContainerA)
	var toB, toA [][]byte
	for outer := range uint8(4) {
		for inner := range uint8(4) {
			toB = append(toB, toVXDP.frame(outer, inner))
			toA = append(toA, toKernel.frame(outer, inner))
		}
	}
	sendOnWire(t, tp.HostA, tp.WireA, toB)
	sendOnWire(t, tp.HostB, tp.WireB, toA)
	vxdp, kernel := stopB(), stopA()
	after, _ := scrape(t, tp.HostB, dataplane.DefaultAdmin)

	// RFC 6040 as Linux decapsulates, by [inner][outer]; -1: dropped.
	table := [4][4]int{{0, 0, 0, -1}, {1, 1, 1, 3}, {2, 1, 2, 3}, {3, 3, 3, 3}}
	for outer := range 4 {
		for inner := range 4 {
			key := fmt.Sprintf("ecn:%d%d", outer, inner)
			x, xok := vxdp[key]
			k, kok := kernel[key]
			want := table[inner][outer]
			if want < 0 {
				if xok || kok {
					t.Errorf("outer %d inner %d: delivered (vxdp %v tos %#x, kernel %v tos %#x), want dropped", outer, inner, xok, x, kok, k)
				}
				continue
			}
			if !xok || !kok || x != k || x != ecnDSCP|uint8(want) {
				t.Errorf("outer %d inner %d: vxdp delivered %v tos %#x, kernel %v tos %#x; want tos %#x",
					outer, inner, xok, x, kok, k, ecnDSCP|want)
			}
		}
	}
	if d := after[dpDrop("ecn_ce_not_ect")] - before[dpDrop("ecn_ce_not_ect")]; d != 1 {
		t.Errorf("ecn_ce_not_ect rose by %v, want 1", d)
	}
}
