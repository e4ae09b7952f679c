//go:build linux

package dataplane

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// egressNode is a port reader with a real AF_XDP socket to transmit on: VNI 42 with one
// TAP-with-offloads port (no device: frames are handed to the reader as if read) and one
// remote VTEP whose next hop is resolved, in a throwaway namespace whose veth pair is the
// underlay.
type egressNode struct {
	e    *egress
	sock *xsk.Socket
	c    *counters
}

// egressDst is the inner destination MAC, learnt behind the remote VTEP.
var egressDst = net.HardwareAddr{0x02, 0, 0, 0, 0x0e, 0x02}

func newEgressNode(t testing.TB) *egressNode {
	t.Helper()
	enterVethNS(t, "egress")
	wire := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wire0", MTU: 1500}, PeerName: "wire1"}
	if err := netlink.LinkAdd(wire); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"wire0", "wire1"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	l, err := netlink.LinkByName("wire0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := xsk.Open(xsk.Options{Ifindex: l.Attrs().Index, NumFrames: umemFrames, RingSize: ringSize, TxFrames: txFrames})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })

	cfg := &Config{Port: 4789, Local: netip.AddrFrom4([4]byte(testLocal)), Offload: true}
	v := &VTEP{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[uint32]*network{},
		resolve: make(chan struct{}, 1), room: offload.HdrLen}
	table, err := fdb.New(fdb.Options{Cap: 64})
	if err != nil {
		t.Fatal(err)
	}
	r := &remote{index: 0, addr: netip.AddrFrom4([4]byte(testRemote))}
	n := &network{vni: 42, fdb: table, remotes: []*remote{r}, encaps: make([]encapSlot, 1)}
	tmpl, err := packet.NewEncapOptions([6]byte(l.Attrs().HardwareAddr), [6]byte{2, 0, 0, 0, 0x0a, 1}, cfg.Local, r.addr, cfg.Port, n.vni,
		packet.DefaultHeaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n.encaps[0].p.Store(tmpl)
	if table.Learn(fdb.MACFrom(egressDst), fdb.RemoteVTEP(0), 1) != fdb.LearnAdded {
		t.Fatal("learn the destination")
	}
	p := &tap{port: Port{TAP: "p42", MTU: 1450}, index: 0, net: n, vnet: true}
	n.ports = []*tap{p}
	v.nets[42], v.ports, v.remotes = n, []*tap{p}, []*remote{r}
	c := &counters{}
	return &egressNode{e: newEgress(v, p, c, sock), sock: sock, c: c}
}

// tapRead lays frame out in a port reader's buffer as a read from a TAP with offloads
// leaves it, behind its virtio_net_hdr h, and returns the read's size.
func tapRead(buf []byte, h offload.VirtioNetHdr, frame []byte) int {
	h.Encode(buf[packet.Headroom-offload.HdrLen:])
	copy(buf[packet.Headroom:], frame)
	return offload.HdrLen + len(frame)
}

// tsoFrame is a TCP super-frame toward egressDst as a container's kernel hands it to a
// TAP with TSO: payload bytes behind one set of headers, the checksum left to the
// segmenter, and the virtio_net_hdr that says so.
func tsoFrame(t testing.TB, payload int) (offload.VirtioNetHdr, []byte) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, Id: 7,
		SrcIP: net.IPv4(198, 51, 100, 1).To4(), DstIP: net.IPv4(198, 51, 100, 2).To4()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 1, Ack: 1, ACK: true, PSH: true, Window: 500}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	frame := serialize(t, &layers.Ethernet{SrcMAC: testInnerSrc, DstMAC: egressDst, EthernetType: layers.EthernetTypeIPv4},
		ip, tcp, gopacket.Payload(bytes.Repeat([]byte{0x5a}, payload)))
	return offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, HdrLen: 54,
		GSOSize: 1398, CsumStart: 34, CsumOffset: 16}, frame
}

// TestEgressNoAllocs: a port reader's work on a TSO super-frame and on a plain frame, from
// the TAP read to the AF_XDP transmit on the underlay (cutting, checksums, outer headers,
// the ring and its wakeup), allocates nothing, and every segment goes out.
func TestEgressNoAllocs(t *testing.T) {
	en := newEgressNode(t)
	h, super := tsoFrame(t, 20000)
	_, plain := tsoFrame(t, 500)
	binary.BigEndian.PutUint16(plain[14+2:], uint16(len(plain)-14)) // a frame of its own
	plainHdr := offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, CsumStart: 34, CsumOffset: 16}
	buf := make([]byte, packet.Headroom+offload.MaxFrameLen)
	round := func() {
		en.e.readVnet(buf, tapRead(buf, h, super), 1)
		en.e.readVnet(buf, tapRead(buf, plainHdr, plain), 1)
		en.e.flush()
	}
	round()
	before := en.c.txPackets.Load()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Fatalf("%.1f allocations per round", n)
	}
	segs := (20000 + 1398 - 1) / 1398
	if got := en.c.txPackets.Load() - before; got != uint64(101*(segs+1)) {
		var c Counters
		c.add(en.c)
		t.Fatalf("%d frames transmitted in 101 rounds, want %d (drops: %v)", got, 101*(segs+1), c.Drops)
	}
}

// BenchmarkEgressTSO measures a port reader's work on a TSO super-frame of 45 segments,
// from the TAP read to the AF_XDP transmit on the underlay; -benchmem shows it allocates
// nothing.
func BenchmarkEgressTSO(b *testing.B) {
	en := newEgressNode(b)
	h, super := tsoFrame(b, 45*1398)
	buf := make([]byte, packet.Headroom+offload.MaxFrameLen)
	size := tapRead(buf, h, super)
	b.ReportAllocs()
	b.SetBytes(int64(len(super)))
	for b.Loop() {
		en.e.readVnet(buf, size, 1)
		en.e.flush()
	}
}
