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
	return newEgressNodeMTU(t, 1500, 1450)
}

// newEgressNodeMTU is newEgressNode with a wire of wireMTU bytes and a port of portMTU;
// a port MTU beyond one UMEM frame transmits on a multi-buffer socket, as a VTEP would.
func newEgressNodeMTU(t testing.TB, wireMTU, portMTU int) *egressNode {
	t.Helper()
	enterVethNS(t, "egress")
	wire := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wire0", MTU: wireMTU}, PeerName: "wire1"}
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
	cfg := &Config{Port: 4789, Local: netip.AddrFrom4([4]byte(testLocal)), Offload: true,
		Networks: []Network{{VNI: 42, Ports: []Port{{TAP: "p42", MTU: portMTU}}}}}
	sock, err := xsk.Open(xsk.Options{Ifindex: l.Attrs().Index, NumFrames: umemFrames, RingSize: ringSize, TxFrames: txFrames,
		MultiBuffer: needsMultiBuffer(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })

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
	p := &tap{port: cfg.Networks[0].Ports[0], index: 0, net: n, vnet: true}
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
	return tsoFrameMSS(t, payload, 1398)
}

// tsoFrameMSS is tsoFrame with segments of mss bytes of payload.
func tsoFrameMSS(t testing.TB, payload, mss int) (offload.VirtioNetHdr, []byte) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, Id: 7,
		SrcIP: net.IPv4(198, 51, 100, 1).To4(), DstIP: net.IPv4(198, 51, 100, 2).To4()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 1, Ack: 1, ACK: true, PSH: true, Window: 500}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	frame := serialize(t, &layers.Ethernet{SrcMAC: testInnerSrc, DstMAC: egressDst, EthernetType: layers.EthernetTypeIPv4},
		ip, tcp, gopacket.Payload(bytes.Repeat([]byte{0x5a}, payload)))
	return offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, HdrLen: 54,
		GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 16}, frame
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

// jumboMSS is the TCP payload of a full segment at the jumbo port MTU, 8950 less 40 bytes
// of IPv4 and TCP headers and 12 of timestamps: what Linux sends at that MTU.
const jumboMSS = 8950 - 40 - 12

// TestEgressNoAllocsJumbo is TestEgressNoAllocs at wire MTU 9000 and port MTU 8950: the
// segments of a TSO super-frame are jumbo frames that Transmit cuts across three TX
// frames each, and still nothing is allocated and every segment goes out.
func TestEgressNoAllocsJumbo(t *testing.T) {
	en := newEgressNodeMTU(t, 9000, 8950)
	if !en.sock.MultiBuffer() {
		t.Fatal("the socket of a port of mtu 8950 is not multi-buffer")
	}
	h, super := tsoFrameMSS(t, 60000, jumboMSS)
	buf := make([]byte, packet.Headroom+offload.MaxFrameLen)
	round := func() {
		en.e.readVnet(buf, tapRead(buf, h, super), 1)
		en.e.flush()
	}
	round()
	before, descs := en.c.txPackets.Load(), en.sock.Stats
	st0, _ := descs()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Fatalf("%.1f allocations per round", n)
	}
	segs := (60000 + jumboMSS - 1) / jumboMSS
	if got := en.c.txPackets.Load() - before; got != uint64(101*segs) {
		var c Counters
		c.add(en.c)
		t.Fatalf("%d frames transmitted in 101 rounds, want %d (drops: %v)", got, 101*segs, c.Drops)
	}
	st1, _ := descs()
	if d := st1.Transmitted - st0.Transmitted; d <= uint64(101*segs) || st1.TxTooLong != 0 {
		t.Fatalf("%d TX descriptors for %d jumbo frames (%d too long): not cut across frames", d, 101*segs, st1.TxTooLong)
	}
}

// BenchmarkEgressTSOJumbo is BenchmarkEgressTSO at port MTU 8950: a 64 KB super-frame of
// 7 jumbo segments, each transmitted over three UMEM frames.
func BenchmarkEgressTSOJumbo(b *testing.B) {
	en := newEgressNodeMTU(b, 9000, 8950)
	h, super := tsoFrameMSS(b, 7*jumboMSS, jumboMSS)
	buf := make([]byte, packet.Headroom+offload.MaxFrameLen)
	size := tapRead(buf, h, super)
	b.ReportAllocs()
	b.SetBytes(int64(len(super)))
	for b.Loop() {
		en.e.readVnet(buf, size, 1)
		en.e.flush()
	}
}
