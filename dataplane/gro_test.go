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

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
)

// groPortMAC is the MAC of both local ports of the GRO test node, one in each VNI: the
// same container MAC in two networks must not make their flows one.
var groPortMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x0d, 0x01}

// groNode is a VTEP without sockets or devices: VNIs 42 and 43, each with remote testRemote
// and one local port (MTU 1450) of MAC groPortMAC, and one ingress worker with a micro-flow
// to fill, as setup builds them.
type groNode struct {
	v  *VTEP
	w  *worker
	mf *microflow
}

func newGRONode(t testing.TB, offloads bool) *groNode {
	t.Helper()
	cfg := &Config{Port: 4789, Workers: 1, MicroFlow: 64, Offload: offloads,
		Networks: []Network{{VNI: 42, Ports: []Port{{TAP: "p42", MTU: 1450}}}, {VNI: 43, Ports: []Port{{TAP: "p43", MTU: 1450}}}}}
	v := &VTEP{cfg: cfg, nets: map[uint32]*network{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if offloads {
		v.room = offload.HdrLen
	}
	r := &remote{index: 0, addr: netip.AddrFrom4([4]byte(testRemote))}
	v.remotes = []*remote{r}
	for i, nc := range cfg.Networks {
		table, err := fdb.New(fdb.Options{Cap: 64})
		if err != nil {
			t.Fatal(err)
		}
		n := &network{vni: nc.VNI, fdb: table, remotes: []*remote{r}}
		p := &tap{port: nc.Ports[0], index: i, net: n, vnet: offloads}
		copy(p.mac[:], groPortMAC)
		if err := table.Static(fdb.MACFrom(p.mac[:]), fdb.LocalPort(i)); err != nil {
			t.Fatal(err)
		}
		n.ports = []*tap{p}
		v.nets[nc.VNI] = n
		v.ports = append(v.ports, p)
	}
	v.workerCnt = make([]counters, 1)
	if err := v.newWorkers(); err != nil {
		t.Fatal(err)
	}
	mf := &microflow{out: make([]delivery, 0, cfg.MicroFlow), rest: make([][]byte, 0, cfg.MicroFlow)}
	return &groNode{v: v, w: &v.workers[0], mf: mf}
}

// process runs frames through the worker as one micro-flow, as VTEP.process does, and
// returns what it queued for the merger.
func (g *groNode) process(frames [][]byte) []delivery {
	w, mf := g.w, g.mf
	mf.out = mf.out[:0]
	w.mf = mf
	mf.rest = mf.rest[:0]
	var o packet.Outer
	for _, f := range frames {
		w.ingress(f, &o, 1)
	}
	if w.gro != nil {
		w.gro.Flush(w.emitFn)
	}
	return mf.out
}

// tcpSegments returns n consecutive full TCP segments of one flow toward groPortMAC, as the
// sender's kernel cuts them: IPv4 IDs and sequence numbers in step, DF, ACK.
func tcpSegments(t testing.TB, n int) [][]byte {
	var segs [][]byte
	for i := range n {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			Id: uint16(100 + i), SrcIP: net.IPv4(198, 51, 100, 1).To4(), DstIP: net.IPv4(198, 51, 100, 2).To4()}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: uint32(7000 + i*1000), Ack: 9, ACK: true, Window: 500}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		payload := bytes.Repeat([]byte{byte(i)}, 1000)
		segs = append(segs, serialize(t,
			&layers.Ethernet{SrcMAC: testInnerSrc, DstMAC: groPortMAC, EthernetType: layers.EthernetTypeIPv4},
			ip, tcp, gopacket.Payload(payload)))
	}
	return segs
}

// withOuterChecksum sets the outer UDP checksum of a vxlanFrame, as a sender whose vxlan
// has udpcsum does, and returns the frame.
func withOuterChecksum(f []byte) []byte {
	udp := f[14+20:]
	udp[6], udp[7] = 0, 0
	src, dst := netip.AddrFrom4([4]byte(f[26:30])), netip.AddrFrom4([4]byte(f[30:34]))
	sum := packet.Checksum(udp, packet.PseudoHeaderSum(src, dst, 17, len(udp)))
	if sum == 0 {
		sum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:8], sum)
	return f
}

// TestWorkerSingleChecksumLeftToKernel: a TCP segment that leaves the coalescer alone,
// behind an outer UDP checksum that verified, goes to the TAP as CHECKSUM_PARTIAL, so that
// the container's kernel does not sum it again, and the kernel's completion gives back the
// segment as sent. One whose inner checksum is wrong (corrupted before it was
// encapsulated: the outer checksum covers the damage) goes as it came, for the kernel to
// drop.
func TestWorkerSingleChecksumLeftToKernel(t *testing.T) {
	g := newGRONode(t, true)
	seg := tcpSegments(t, 1)[0]
	out := g.process([][]byte{withOuterChecksum(vxlanFrame(t, 42, seg))})
	if len(out) != 1 {
		t.Fatalf("%d deliveries", len(out))
	}
	h, err := offload.Decode(out[0].pkt)
	if err != nil {
		t.Fatal(err)
	}
	if h.Flags != offload.FlagNeedsCsum || h.GSOType != offload.GSONone {
		t.Fatalf("single segment went out with %+v, want NEEDS_CSUM and no GSO", h)
	}
	if got := resegment(t, out[0], g.v.room); len(got) != 1 || !bytes.Equal(got[0], seg) {
		t.Fatalf("the completed segment differs from the one sent")
	}

	bad := append([]byte(nil), seg...)
	bad[len(bad)-1] ^= 0x55
	out = g.process([][]byte{withOuterChecksum(vxlanFrame(t, 42, bad))})
	if len(out) != 1 {
		t.Fatalf("%d deliveries of the corrupted segment", len(out))
	}
	if h, _ := offload.Decode(out[0].pkt); h != (offload.VirtioNetHdr{}) || !bytes.Equal(out[0].pkt[offload.HdrLen:], bad) {
		t.Fatalf("the corrupted segment went out as %+v: the kernel would take it as verified", h)
	}
}

// resegment cuts a delivery back into inner frames as the kernel would: a super-frame
// through offload.Segment, a plain frame as it is.
func resegment(t *testing.T, d delivery, room int) [][]byte {
	t.Helper()
	if room == 0 {
		return [][]byte{d.pkt}
	}
	h, err := offload.Decode(d.pkt)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 64)
	for i := range out {
		out[i] = make([]byte, 1600)
	}
	sizes := make([]int, len(out))
	// What the TAP gets: pkt, and for a super-frame built in place the pieces behind it.
	frame := append([]byte(nil), d.pkt[offload.HdrLen:]...)
	for _, r := range d.rest {
		frame = append(frame, r...)
	}
	n, err := offload.Segment(h, frame, 1450, out, sizes, 0)
	if err != nil {
		t.Fatalf("segment a delivery with %+v: %v", h, err)
	}
	var segs [][]byte
	for i := range n {
		segs = append(segs, out[i][:sizes[i]])
	}
	return segs
}

// TestWorkerCoalesces: a micro-flow of one TCP flow's segments leaves the worker as one
// TAP write of a GSO super-frame that the kernel cuts back into exactly those segments,
// counted as the segments it carries; without offloads, one write per segment.
// With an outer UDP checksum, the inner checksums are verified from the sum its check
// leaves, which must come to the same.
func TestWorkerCoalesces(t *testing.T) {
	inner := tcpSegments(t, 10)
	wantBytes := 0
	for _, s := range inner {
		wantBytes += len(s)
	}
	for _, c := range []struct{ offloads, outerSum bool }{{true, false}, {false, false}, {true, true}} {
		offloads := c.offloads
		g := newGRONode(t, offloads)
		var frames [][]byte
		for _, s := range inner {
			f := vxlanFrame(t, 42, s)
			if c.outerSum {
				withOuterChecksum(f)
			}
			frames = append(frames, f)
		}
		out := g.process(frames)
		want := len(inner)
		if offloads {
			want = 1
		}
		if len(out) != want {
			t.Fatalf("offloads %v: %d deliveries, want %d", offloads, len(out), want)
		}
		var got [][]byte
		frameCount, byteCount := 0, 0
		for _, d := range out {
			if d.t != g.v.ports[0] {
				t.Fatalf("delivered to %s, want p42", d.t.port.TAP)
			}
			got = append(got, resegment(t, d, g.v.room)...)
			frameCount += int(d.frames)
			byteCount += int(d.bytes)
		}
		if frameCount != len(inner) || byteCount != wantBytes {
			t.Errorf("offloads %v: deliveries count %d frames, %d bytes; want %d, %d", offloads, frameCount, byteCount, len(inner), wantBytes)
		}
		if len(got) != len(inner) {
			t.Fatalf("offloads %v: %d segments back, %d sent", offloads, len(got), len(inner))
		}
		for i := range got {
			if !bytes.Equal(got[i], inner[i]) {
				t.Fatalf("offloads %v: segment %d differs after the round trip", offloads, i)
			}
		}
	}
}

// TestWorkerKeepsVNIsApart: the same segments in two VNIs, interleaved, toward ports that
// share a MAC, come out as two super-frames, each to its own VNI's port.
func TestWorkerKeepsVNIsApart(t *testing.T) {
	g := newGRONode(t, true)
	inner := tcpSegments(t, 8)
	var frames [][]byte
	for _, s := range inner {
		frames = append(frames, vxlanFrame(t, 42, s), vxlanFrame(t, 43, s))
	}
	out := g.process(frames)
	if len(out) != 2 {
		t.Fatalf("%d deliveries, want one super-frame per VNI", len(out))
	}
	seen := map[*tap]bool{}
	for _, d := range out {
		seen[d.t] = true
		if segs := resegment(t, d, g.v.room); len(segs) != len(inner) {
			t.Fatalf("port %s got %d segments, want %d", d.t.port.TAP, len(segs), len(inner))
		}
	}
	if !seen[g.v.ports[0]] || !seen[g.v.ports[1]] {
		t.Fatalf("deliveries did not reach both ports: %v", seen)
	}
}

// TestWorkerFloodKeepsOrder: a flooded frame in the middle of a flow's segments leaves
// after the segments before it and before those after it, behind a plain header.
func TestWorkerFloodKeepsOrder(t *testing.T) {
	g := newGRONode(t, true)
	inner := tcpSegments(t, 6)
	bcast := append([]byte(nil), inner[0]...)
	copy(bcast[0:6], layers.EthernetBroadcast)
	frames := [][]byte{
		vxlanFrame(t, 42, inner[0]), vxlanFrame(t, 42, inner[1]), vxlanFrame(t, 42, inner[2]),
		vxlanFrame(t, 42, bcast),
		vxlanFrame(t, 42, inner[3]), vxlanFrame(t, 42, inner[4]), vxlanFrame(t, 42, inner[5]),
	}
	out := g.process(frames)
	if len(out) != 3 {
		t.Fatalf("%d deliveries, want super-frame, broadcast, super-frame", len(out))
	}
	for i, want := range []int{3, 1, 3} {
		if got := resegment(t, out[i], g.v.room); len(got) != want {
			t.Fatalf("delivery %d carries %d frames, want %d", i, len(got), want)
		}
	}
	if h, _ := offload.Decode(out[1].pkt); h != (offload.VirtioNetHdr{}) || !bytes.Equal(out[1].pkt[offload.HdrLen:], bcast) {
		t.Fatalf("the flooded frame went out as %+v, % x", h, out[1].pkt[:24])
	}
}

// TestWorkerCoalesceNoAllocs: a micro-flow through the worker with offloads allocates
// nothing.
func TestWorkerCoalesceNoAllocs(t *testing.T) {
	g := newGRONode(t, true)
	inner := tcpSegments(t, 40)
	var frames [][]byte
	for _, s := range inner {
		frames = append(frames, vxlanFrame(t, 42, s))
	}
	restore := headerRestorer(frames)
	out := 0
	if n := testing.AllocsPerRun(100, func() { restore(); out = len(g.process(frames)) }); n != 0 {
		t.Fatalf("%.1f allocations per micro-flow", n)
	}
	if out != 1 {
		t.Fatalf("the micro-flow left in %d deliveries, want one super-frame", out)
	}
}

// headerRestorer returns a function that puts back the first 128 bytes of each frame as
// they are now: a super-frame is built in place, its first frame's headers rewritten, so a
// test that runs the same frames again restores them first, as a fresh micro-flow has them.
func headerRestorer(frames [][]byte) func() {
	pristine := make([][]byte, len(frames))
	for i, f := range frames {
		pristine[i] = append([]byte(nil), f[:min(128, len(f))]...)
	}
	return func() {
		for i, f := range frames {
			copy(f, pristine[i])
		}
	}
}

// BenchmarkWorkerMicroflow runs a micro-flow of 64 segments of one TCP flow (1000 bytes of
// payload each) through an ingress worker with offloads: outer headers parsed and checked,
// inner checksums verified, the segments merged. zero_csum: the sender left the outer UDP
// checksum out; outer_csum: it sent one, which covers the inner frame.
func BenchmarkWorkerMicroflow(b *testing.B) {
	for _, outerSum := range []bool{false, true} {
		name := "zero_csum"
		if outerSum {
			name = "outer_csum"
		}
		b.Run(name, func(b *testing.B) {
			g := newGRONode(b, true)
			var frames [][]byte
			size := 0
			for _, s := range tcpSegments(b, 64) {
				f := vxlanFrame(b, 42, s)
				if outerSum {
					withOuterChecksum(f)
				}
				frames = append(frames, f)
				size += len(f)
			}
			restore := headerRestorer(frames)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				restore()
				g.process(frames)
			}
		})
	}
}
