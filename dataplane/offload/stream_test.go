package offload

import (
	"encoding/binary"
	"testing"

	"github.com/vxdp/vxdp/dataplane/packet"
)

// streamGen builds interleaved test flows with the disturbances GRO must survive.
// choose(n) returns a number in [0, n): math/rand in property tests, the fuzzer's
// bytes in fuzz targets.
type streamGen struct {
	tb      testing.TB
	choose  func(n int) int
	flows   []*genFlow
	frames  [][]byte
	counter uint32 // makes every frame unique
	clean   bool   // no disturbances: only data segments, shorter ones and PSH
}

type genFlow struct {
	spec  flowSpec
	seq   uint32
	ack   uint32
	id    uint16
	tsval uint32
	mss   int
}

// addFlow adds a flow; mss 0 picks the largest that fits testMTU.
func (g *streamGen) addFlow(spec flowSpec, mss int) {
	if mss <= 0 {
		mss = testMTU - spec.ipHdrLen()
	}
	g.flows = append(g.flows, &genFlow{spec: spec, seq: uint32(g.choose(1<<16)) << 16, ack: 1,
		id: uint16(g.choose(1 << 16)), tsval: 1000, mss: mss})
}

// payload returns n bytes that start with a fresh counter.
func (g *streamGen) payload(n int) []byte {
	g.counter++
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(int(g.counter)*7 + i*13)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(p, g.counter)
	}
	return p
}

// segment builds the flow's next data segment of n payload bytes and advances it.
func (g *streamGen) segment(f *genFlow, n int, flags uint8) []byte {
	s := segSpec{seq: f.seq, ack: f.ack, flags: flags, window: 512, id: f.id,
		tsval: f.tsval, tsecr: 77, payload: g.payload(n)}
	f.seq += uint32(n)
	f.id++
	return f.spec.build(g.tb, s)
}

// step appends one or two frames of a random flow.
func (g *streamGen) step() {
	f := g.flows[g.choose(len(g.flows))]
	if f.spec.udp {
		g.stepUDP(f)
		return
	}
	ev := g.choose(100)
	if g.clean {
		ev %= 70
	}
	switch {
	case ev < 60:
		g.frames = append(g.frames, g.segment(f, f.mss, tcpACK))
	case ev < 66:
		g.frames = append(g.frames, g.segment(f, 1+g.choose(f.mss), tcpACK))
	case ev < 70:
		g.frames = append(g.frames, g.segment(f, 1+g.choose(f.mss), tcpACK|tcpPSH))
	case ev < 73: // a pure ACK, then later segments carry another ACK number
		g.frames = append(g.frames, g.segment(f, 0, tcpACK))
		f.ack += 1000
	case ev < 76: // corrupted payload
		b := g.segment(f, 1+g.choose(f.mss), tcpACK)
		b[len(b)-1] ^= 0x5a
		g.frames = append(g.frames, b)
	case ev < 79: // two segments swapped
		a := g.segment(f, f.mss, tcpACK)
		b := g.segment(f, f.mss, tcpACK)
		g.frames = append(g.frames, b, a)
	case ev < 81: // one segment with another TTL
		s := segSpec{seq: f.seq, ack: f.ack, flags: tcpACK, window: 512, id: f.id, tsval: f.tsval, tsecr: 77,
			ttl: 3, payload: g.payload(f.mss)}
		f.seq += uint32(f.mss)
		f.id++
		g.frames = append(g.frames, f.spec.build(g.tb, s))
	case ev < 83:
		f.id += 1000
		g.frames = append(g.frames, g.segment(f, f.mss, tcpACK))
	case ev < 85:
		f.tsval++
		g.frames = append(g.frames, g.segment(f, f.mss, tcpACK))
	case ev < 87:
		g.frames = append(g.frames, g.arp())
	case ev < 89:
		g.frames = append(g.frames, g.hidden(f))
	case ev < 91:
		g.frames = append(g.frames, g.segment(f, f.mss, tcpACK|tcpCWR|tcpECE))
	case ev < 93: // same 5-tuple, IPv4 options: never merged
		spec := f.spec
		spec.ipOpts = !spec.v6
		s := segSpec{seq: f.seq, ack: f.ack, flags: tcpACK, window: 512, id: f.id, tsval: f.tsval, tsecr: 77,
			payload: g.payload(min(f.mss, testMTU-spec.ipHdrLen()))}
		f.seq += uint32(len(s.payload))
		f.id++
		g.frames = append(g.frames, spec.build(g.tb, s))
	case ev < 95:
		g.frames = append(g.frames, g.segment(f, 1+g.choose(f.mss), tcpACK|tcpFIN))
	default:
		g.frames = append(g.frames, g.segment(f, f.mss, tcpACK))
	}
}

// stepUDP appends a datagram of a UDP flow: mostly of the flow's size.
func (g *streamGen) stepUDP(f *genFlow) {
	n := f.mss
	ev := g.choose(100)
	if g.clean {
		ev %= 80
	}
	switch {
	case ev < 70:
	case ev < 80:
		n = 4 + g.choose(f.mss-3)
	case ev < 85:
		f.id += 1000
	case ev < 90: // corrupted
		s := segSpec{id: f.id, payload: g.payload(n)}
		f.id++
		b := f.spec.build(g.tb, s)
		b[len(b)-1] ^= 0xa5
		g.frames = append(g.frames, b)
		return
	case ev < 95:
		g.frames = append(g.frames, g.hidden(f))
		return
	}
	s := segSpec{id: f.id, payload: g.payload(n)}
	f.id++
	g.frames = append(g.frames, f.spec.build(g.tb, s))
}

// arp returns an ARP request, unique by its sender address.
func (g *streamGen) arp() []byte {
	g.counter++
	b := make([]byte, 42)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], macA[:])
	binary.BigEndian.PutUint16(b[12:14], 0x0806)
	copy(b[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 1})
	binary.BigEndian.PutUint32(b[28:32], g.counter)
	return b
}

// hidden returns a frame between f's addresses whose ports cannot be seen: an IPv4
// non-first fragment of f's protocol, or an IPv6 packet with a destination options
// header.
func (g *streamGen) hidden(f *genFlow) []byte {
	b := f.spec.build(g.tb, segSpec{id: f.id, flags: tcpACK, payload: g.payload(16)})
	f.id++
	if f.spec.v6 {
		b[ethLen+6] = 60
		return b
	}
	b[ethLen+6], b[ethLen+7] = 0x00, 0x10 // fragment offset 16 (128 bytes)
	b[ethLen+10], b[ethLen+11] = 0, 0
	binary.BigEndian.PutUint16(b[ethLen+10:], ^naiveFold(naiveSum(b[ethLen:ethLen+20], 0)))
	return b
}

// coalesceAll feeds frames to a new Coalescer in batches of random size, with Reset
// before each batch, Flush after, and returns copies of what it emitted.
func coalesceAll(tb testing.TB, cfg CoalescerConfig, frames [][]byte, choose func(int) int, bufLen int) []emitted {
	tb.Helper()
	nbufs := 64
	if cfg.ReuseBuffers {
		nbufs = cfg.MaxFlows
	}
	bufs := make([][]byte, nbufs)
	for i := range bufs {
		bufs[i] = make([]byte, bufLen)
	}
	c, err := NewCoalescer(cfg, bufs)
	if err != nil {
		tb.Fatal(err)
	}
	var out []emitted
	emit := collect(tb, &out)
	for i := 0; i < len(frames); {
		n := 1 + choose(64)
		if !cfg.ReuseBuffers {
			c.Reset(bufs)
		}
		for ; n > 0 && i < len(frames); n, i = n-1, i+1 {
			// Without room; with room (merged in place with InPlace); or as the ingress
			// path offers it, with room and the sum an outer UDP checksum left (the frame's
			// own, whatever its inner checksums say). A chooser that always says 63
			// (TestCoalesceWithRoom's) takes the first.
			pkt := make([]byte, HdrLen+len(frames[i]))
			copy(pkt[HdrLen:], frames[i])
			switch choose(3) {
			case 1:
				c.AddWithRoom(pkt, 0, emit)
			case 2:
				c.AddWithRoomSum(pkt, 0, packet.Sum(frames[i], 0), emit)
			default:
				c.Add(frames[i], emit)
			}
		}
		c.Flush(emit)
	}
	st := c.Stats()
	if st.Frames != uint64(len(frames)) || st.Merged+st.Singles != st.Frames {
		tb.Fatalf("stats do not add up: %+v for %d frames", st, len(frames))
	}
	return out
}

// checkEmitted checks each emitted frame on its own: a super-frame's header fields,
// its size and that its segments are of one flow.
func checkEmitted(tb testing.TB, items []emitted) {
	tb.Helper()
	for k, it := range items {
		if it.hdr.GSOType == GSONone {
			// A plain header, or a verified checksum left for the kernel to complete.
			partial := it.hdr.Flags == FlagNeedsCsum && it.hdr.GSOSize == 0 &&
				int(it.hdr.HdrLen) <= len(it.frame) && int(it.hdr.CsumStart)+int(it.hdr.CsumOffset)+2 <= int(it.hdr.HdrLen)
			if it.hdr != (VirtioNetHdr{}) && !partial {
				tb.Fatalf("single frame %d with header %+v", k, it.hdr)
			}
			continue
		}
		if len(it.frame) > MaxFrameLen {
			tb.Fatalf("super-frame %d of %d bytes", k, len(it.frame))
		}
		if it.hdr.Flags != FlagNeedsCsum || it.hdr.GSOSize == 0 || int(it.hdr.HdrLen) > len(it.frame) ||
			int(it.hdr.CsumStart)+int(it.hdr.CsumOffset)+2 > int(it.hdr.HdrLen) {
			tb.Fatalf("super-frame %d: header %+v", k, it.hdr)
		}
		payload := len(it.frame) - int(it.hdr.HdrLen)
		if payload <= int(it.hdr.GSOSize) {
			tb.Fatalf("super-frame %d: %d payload bytes with gso_size %d: the kernel takes it as no GSO", k, payload, it.hdr.GSOSize)
		}
		// Cut at the largest MTU of the tests: a super-frame's gso_size fits it, so its
		// segments are the ones it was merged from, whichever MTU they crossed.
		segs, _ := expand(tb, []emitted{it}, jumboMTU)
		k0, _, _ := keys(segs[0])
		for _, s := range segs[1:] {
			if ks, _, _ := keys(s); ks != k0 {
				tb.Fatalf("super-frame %d mixes flows %s and %s", k, k0, ks)
			}
		}
	}
}
