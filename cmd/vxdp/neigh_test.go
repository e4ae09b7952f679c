//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/internal/topo"
)

// wireNeighFrames counts, until stop, the VXLAN frames on host A's wire from host B whose
// inner frame is an ARP request or an IPv6 neighbour solicitation, by the address asked for.
func wireNeighFrames(t *testing.T, tp *topo.Topology) (stop func() map[string]int) {
	t.Helper()
	fd, _ := packetSocket(t, tp.HostA, tp.WireA)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	var mu sync.Mutex
	seen := map[string]int{}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		buf := make([]byte, 65536)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
			ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
			if ip4 == nil || vx == nil || !ip4.SrcIP.Equal(tp.UnderlayB.Addr().AsSlice()) {
				continue
			}
			inner := gopacket.NewPacket(vx.Payload, layers.LayerTypeEthernet, gopacket.Default)
			mu.Lock()
			if arp, ok := inner.Layer(layers.LayerTypeARP).(*layers.ARP); ok && arp.Operation == layers.ARPRequest {
				seen[net.IP(arp.DstProtAddress).String()]++
			}
			if ns, ok := inner.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation); ok {
				seen[ns.TargetAddress.String()]++
			}
			mu.Unlock()
		}
	}()
	return func() map[string]int {
		time.Sleep(300 * time.Millisecond)
		close(done)
		<-finished
		unix.Close(fd)
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// askNeighbour sends request on container B's eth0 and returns the first frame that comes
// back to it that match accepts, or nil after a second.
func askNeighbour(t *testing.T, tp *topo.Topology, request []byte, match func(gopacket.Packet) bool) gopacket.Packet {
	t.Helper()
	fd, ifindex := packetSocket(t, tp.ContainerB, "eth0")
	defer unix.Close(fd)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	to := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], request[0:6])
	if err := unix.Sendto(fd, request, 0, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || from.(*unix.SockaddrLinklayer).Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if p := gopacket.NewPacket(append([]byte(nil), buf[:n]...), layers.LayerTypeEthernet, gopacket.Default); match(p) {
			return p
		}
	}
	return nil
}

// TestNeighSuppress runs vxdp on host B with neigh_suppress and two neighbours: container
// A's address (behind the kernel's vxlan on host A) and an IPv6 address, both with
// container A's MAC. An ARP request and a neighbour solicitation from container B for
// them are answered by vxdp with that MAC, and no ARP or solicitation for them crosses the
// wire; ping from B to A works on the answer. An ARP request for an address vxdp does not
// list is flooded to host A as before. It runs with container B behind a TAP and behind a
// veth pair.
func TestNeighSuppress(t *testing.T) {
	t.Run("tap", func(t *testing.T) { neighSuppress(t, false) })
	t.Run("veth", func(t *testing.T) { neighSuppress(t, true) })
}

func neighSuppress(t *testing.T, veth bool) {
	needRoot(t)
	tp := newTopology(t, "nsup")
	tp.VethPorts = veth
	ctx := context.Background()
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	macA := ifaceMAC(t, tp.ContainerA, topo.ContainerVethIf)
	const ip6 = "fd42::1"
	startVXDPWith(t, tp, topo.SideB, fmt.Sprintf("    neighbours: [{ip: %s, mac: %q}, {ip: %q, mac: %q}]\n    neigh_suppress: true\n",
		tp.OverlayA.Addr(), macA, ip6, macA))
	waitRunning(t, tp.HostB)
	macB := ifaceMAC(t, tp.ContainerB, "eth0")
	if out, err := tp.ContainerB.Run(ctx, "ip", "neigh", "flush", "all"); err != nil {
		t.Fatalf("flush neighbours: %v: %s", err, out)
	}
	before := scrapeAdmin(t, tp.HostB).get("vxdp_neigh_replies_total")
	stop := wireNeighFrames(t, tp)

	arpFor := func(target net.IP) []byte {
		return serializeLayers(&layers.Ethernet{SrcMAC: macB, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPRequest, SourceHwAddress: macB, SourceProtAddress: tp.OverlayB.Addr().AsSlice(),
				DstHwAddress: make([]byte, 6), DstProtAddress: target.To4()})
	}
	isReply := func(target net.IP) func(p gopacket.Packet) bool {
		return func(p gopacket.Packet) bool {
			arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			return ok && arp.Operation == layers.ARPReply && net.IP(arp.SourceProtAddress).Equal(target)
		}
	}
	p := askNeighbour(t, tp, arpFor(tp.OverlayA.Addr().AsSlice()), isReply(tp.OverlayA.Addr().AsSlice()))
	if p == nil {
		t.Fatal("no ARP reply for container A's address")
	}
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !bytes.Equal(eth.SrcMAC, macA) || !bytes.Equal(eth.DstMAC, macB) || !bytes.Equal(arp.SourceHwAddress, macA) ||
		!bytes.Equal(arp.DstHwAddress, macB) || !net.IP(arp.DstProtAddress).Equal(tp.OverlayB.Addr().AsSlice()) {
		t.Errorf("ARP reply %v %+v", eth, arp)
	}

	// A neighbour solicitation for the IPv6 neighbour, from container B's link-local address.
	src := net.ParseIP("fe80::42")
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: src, DstIP: net.ParseIP("ff02::1:ff00:1")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	ns := serializeLayers(&layers.Ethernet{SrcMAC: macB, DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6},
		ip, icmp, &layers.ICMPv6NeighborSolicitation{TargetAddress: net.ParseIP(ip6),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macB}}})
	p = askNeighbour(t, tp, ns, func(p gopacket.Packet) bool {
		na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
		return ok && na.TargetAddress.Equal(net.ParseIP(ip6))
	})
	if p == nil {
		t.Fatal("no neighbour advertisement for " + ip6)
	}
	na := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	ip6h := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if !na.Solicited() || len(na.Options) != 1 || !bytes.Equal(na.Options[0].Data, macA) || !ip6h.DstIP.Equal(src) ||
		!bytes.Equal(p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet).SrcMAC, macA) {
		t.Errorf("neighbour advertisement %+v from %v to %v", na, ip6h.SrcIP, ip6h.DstIP)
	}

	// The kernel in container B resolves container A through vxdp's answer.
	waitPing(t, tp.ContainerB, tp.OverlayA.Addr(), 5*time.Second)
	// An address vxdp does not list: flooded as before.
	unlisted := net.IPv4(10, 42, 0, 77).To4()
	if askNeighbour(t, tp, arpFor(unlisted), isReply(unlisted)) != nil {
		t.Error("an ARP request for an unlisted address was answered")
	}
	seen := stop()
	if seen[tp.OverlayA.Addr().String()] != 0 || seen[ip6] != 0 {
		t.Errorf("requests for listed neighbours crossed the wire: %v", seen)
	}
	if seen[unlisted.String()] == 0 {
		t.Errorf("the request for an unlisted address did not cross the wire: %v", seen)
	}
	if got := scrapeAdmin(t, tp.HostB).get("vxdp_neigh_replies_total") - before; got < 2 {
		t.Errorf("vxdp_neigh_replies_total rose by %v, want at least 2", got)
	}
}
