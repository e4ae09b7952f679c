package offload

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/vxdp/vxdp/dataplane/packet"
)

// MaxFlowsLimit bounds CoalescerConfig.MaxFlows: Add finds a frame's flow by scanning
// every flow in progress, which stays cheap only for a handful.
const MaxFlowsLimit = 64

// udpMaxSegments is the most datagrams one GSO_UDP_L4 super-frame carries: the
// kernel refuses a TAP write of more than UDP_MAX_SEGMENTS (64 before Linux 6.11,
// 128 since; the lower bound holds everywhere).
const udpMaxSegments = 64

// EmitFunc receives the frames a Coalescer lets out: tag is the tag the frame (or the
// first frame of a super-frame) was offered with, vnetHdr the HdrLen-byte
// virtio_net_hdr to write in front of frame; emit must not modify it. Two cases,
// told apart by vnetHdr[1] (the GSO type):
//   - not GSONone, a super-frame: vnetHdr and frame are adjacent in one buffer, so
//     vnetHdr[:HdrLen+len(frame)] is the whole TAP write.
//   - GSONone, a frame let out as it came in: vnetHdr is an all-zero header and frame
//     the caller's own slice. After AddWithRoom they are adjacent, the header written
//     into the room in front of the frame, so again vnetHdr[:HdrLen+len(frame)] is the
//     whole TAP write; after Add the header is a constant owned by the Coalescer.
//
// rest is nil but for a super-frame built in place (CoalescerConfig.InPlace): then
// vnetHdr[:HdrLen+len(frame)] is the super-frame's first part (the header in the first
// frame's room, the first frame with its headers rewritten) and rest the payloads of the
// frames merged behind it, where they were offered; the TAP write is all of them in
// order (writev). emit must not keep rest: the Coalescer reuses it.
type EmitFunc func(tag uint32, vnetHdr, frame []byte, rest [][]byte)

// CoalescerConfig configures a Coalescer.
type CoalescerConfig struct {
	// MaxFlows is the number of flows in progress at once, 1 to MaxFlowsLimit. A
	// frame that would start one more closes the least recently extended flow.
	MaxFlows int
	// UDP also coalesces the datagrams of a UDP flow into GSO_UDP_L4 super-frames.
	// Only for a TAP whose kernel takes USO: Linux 6.2 or later, with TUNSETOFFLOAD
	// including TUN_F_USO4|TUN_F_USO6 accepted. Off, UDP frames pass as they are.
	UDP bool
	// ReuseBuffers states that emit is done with a super-frame when it returns (it
	// wrote or copied it), so the flow's buffer serves the next flow at once and the
	// Coalescer needs only MaxFlows buffers, given once. When false, every super-frame
	// keeps its buffer, untouched, until the next Reset: for a caller that writes
	// later, after restoring order across workers.
	ReuseBuffers bool
	// InPlace merges the frames offered with room (AddWithRoom, AddWithRoomSum) by
	// reference instead of copying them into a buffer: a super-frame is its first frame,
	// its headers rewritten where they are, and the payloads of the others where they are
	// (emit's rest), for one gathering write. The frames must then stay unchanged and
	// readable until emit's receiver has written them, not only until they are emitted,
	// and the first frame's headers are changed. At most InPlaceMaxSegments frames go
	// into one super-frame. Frames offered without room are merged into buffers as before.
	InPlace bool
}

// InPlaceMaxSegments is the most frames an in-place super-frame gathers: one gathering
// write's pieces stay far below the kernel's IOV_MAX (1024), and a micro-flow of the
// default 64 frames fits one.
const InPlaceMaxSegments = 64

// CoalescerStats counts what a Coalescer did. Plain counters, owned by the Coalescer's
// goroutine; a collector copies them with Stats.
type CoalescerStats struct {
	Frames      uint64 // offered to Add
	SuperFrames uint64 // GSO super-frames emitted
	Merged      uint64 // frames that went out inside a super-frame
	Singles     uint64 // frames emitted as they came in
	BadChecksum uint64 // merge candidates with a wrong IPv4 header or transport checksum
	NoBuffer    uint64 // merges given up because no buffer was left until Reset
}

// Coalescer is software GRO for ingress: it merges consecutive TCP segments (and,
// with CoalescerConfig.UDP, UDP datagrams) of one flow into one Ethernet super-frame
// with a GSO virtio_net_hdr, for a TAP write of up to 64 KB instead of one per MTU.
//
// Add offers one inner Ethernet frame at a time. A TCP segment is merged into its
// flow in progress (same IP version, addresses, protocol and ports) when, compared
// with that flow's first segment: its Ethernet header is identical; its sequence
// number continues the flow; its payload is not larger
// than the first's (a smaller one, or one with PSH, is the flow's last); its flags are
// ACK, optionally PSH, ECE as the first's, no SYN/FIN/RST/URG, and CWR only on the
// first; ACK number, window, urgent pointer and TCP options (timestamps included) are
// byte-identical; IPv4 has no options, no fragment, the same TOS, TTL and DF, and an
// ID one more than the previous segment's (so Segment restores the IDs exactly); IPv6
// has no extension header and the same traffic class, flow label and hop limit; the
// IPv4 header and TCP checksums are correct (verified, since the super-frame goes up
// with CHECKSUM_PARTIAL and is not verified again; a segment that fails leaves alone,
// unchanged, for the kernel to drop); the IP packet stays within 65535 bytes and the
// buffer. UDP datagrams merge on the same IP rules, the same payload
// size but for the last, a non-zero correct checksum, at most 64 per super-frame.
//
// Ordering: per flow, frames leave (through emit) in the order they came in. A frame
// of a flow in progress that cannot be merged first closes the flow (emits it), then
// starts a new one or is emitted itself. Frames of different flows may leave in a
// different order. An IP frame that may belong to a flow but whose ports cannot be seen
// (an IPv4 non-first fragment, IPv6 extension headers) closes every flow between its
// addresses first. Everything else (ARP, ICMP, a malformed frame) is emitted at once,
// unchanged.
//
// A merged flow leaves as a super-frame: the first segment's headers with IPv4 total
// length and header checksum (or IPv6 payload length), UDP length, PSH from the last
// segment, and the folded pseudo-header sum in the transport checksum field;
// virtio_net_hdr: FlagNeedsCsum, GSOTCPv4/GSOTCPv6 (| GSOECN if the first segment had
// CWR) or GSOUDPL4, GSOSize the first segment's payload, HdrLen the Ethernet+IP+
// transport header length, CsumStart the transport header's offset in the frame,
// CsumOffset 16 (TCP) or 6 (UDP). A flow of one frame leaves as that frame, unchanged,
// with flags 0 and GSONone: its checksums were not verified, the kernel checks them;
// unless it was offered with its sum (AddWithRoomSum) and its checksum verifies by it,
// then it leaves with FlagNeedsCsum (see AddWithRoomSum). With CoalescerConfig.InPlace a
// super-frame is not copied: its first frame's headers are rewritten where they are and
// the others' payloads follow by reference (EmitFunc's rest).
//
// Frames passed to Add are read in place and must stay unchanged until they have been
// emitted, at the latest when Flush returns. A Coalescer is not safe for concurrent
// use: one per worker, reused for every batch.
type Coalescer struct {
	cfg   CoalescerConfig
	flows []flow
	store [][]byte // buffers for super-frames until the next Reset; store[next:] unused
	next  int
	clock uint64 // counts Add calls: the flows' last-use stamp
	plain [HdrLen]byte
	stats CoalescerStats
}

// flowKey identifies a flow: what a frame's order must be kept with.
type flowKey struct {
	addrs [32]byte // IPv4: source and destination in the first 8 bytes
	ports [4]byte  // source and destination port
	tag   uint32   // the caller's: frames of different tags never merge
	proto uint8
	v6    bool
}

// flow is a flow in progress: its first frame, by reference while it is alone, then
// the super-frame being built in buf.
type flow struct {
	key     flowKey
	active  bool
	copied  bool   // the frame is in buf[HdrLen:HdrLen+n]; else it is first[:n]
	first   []byte // the first frame as offered, while !copied
	pkt     []byte // first as offered: with the room in front of it if room
	room    bool   // offered through AddWithRoom
	buf     []byte // the super-frame's buffer, once copied (kept across flows with ReuseBuffers)
	n       int    // frame length: end of the IP packet
	limit   int    // largest frame length buf allows
	l4      int    // transport header offset
	hdrEnd  int    // payload offset
	gsoSize int    // the first segment's payload length
	segs    int
	nextSeq uint32 // TCP: sequence number the next segment must have
	nextID  uint16 // IPv4: ID the next segment must have
	psh     bool   // the last merged segment had PSH
	lastUse uint64
	sum     uint16 // the first frame's Sum, if sumOK (AddWithRoomSum)
	sumOK   bool
	// In place (CoalescerConfig.InPlace, offered with room): the frames behind the first
	// are rest's payloads; firstEnd is where the first frame's IP packet ends.
	inPlace  bool
	rest     [][]byte
	firstEnd int
}

// offer is what Add learns about a frame.
type offer struct {
	key     flowKey
	cand    bool // may be merged or start a flow
	l4      int
	hdrEnd  int
	end     int
	payload int
	flags   uint8  // TCP flags
	seq     uint32 // TCP sequence number
	id      uint16 // IPv4 ID
	sum     uint16 // the frame's Sum, if sumOK: offered through AddWithRoomSum
	sumOK   bool
}

// What classify found.
const (
	kindOther   = iota // not part of a tracked flow: emitted at once
	kindPartial        // addresses known, ports hidden: close the flows between them
	kindFlow           // the flow key is known
)

// NewCoalescer returns a Coalescer that builds super-frames in bufs (see Reset).
func NewCoalescer(cfg CoalescerConfig, bufs [][]byte) (*Coalescer, error) {
	if cfg.MaxFlows < 1 || cfg.MaxFlows > MaxFlowsLimit {
		return nil, fmt.Errorf("new coalescer: max flows %d: %w", cfg.MaxFlows, ErrMaxFlows)
	}
	c := &Coalescer{cfg: cfg, flows: make([]flow, cfg.MaxFlows)}
	if cfg.InPlace {
		for i := range c.flows {
			c.flows[i].rest = make([][]byte, 0, InPlaceMaxSegments-1)
		}
	}
	c.Reset(bufs)
	return c, nil
}

// Reset hands the Coalescer the buffers its next super-frames are built in. Each
// buffer holds one super-frame: a virtio_net_hdr and a frame of up to
// len(buf)-HdrLen bytes (MinBufLen and more allows the full 64 KB; a shorter buffer
// gives smaller super-frames). Without ReuseBuffers, each emitted super-frame keeps
// its buffer until the next Reset, and when none is left, frames pass unmerged until
// then. With ReuseBuffers, a flow slot keeps its buffer and len(bufs) >= MaxFlows,
// given once, is enough. Call Reset only with no flow in progress (after Flush).
// Reset does not copy bufs: the caller must leave it unchanged until the next Reset.
func (c *Coalescer) Reset(bufs [][]byte) {
	c.store = bufs
	c.next = 0
}

// Stats returns the counters so far.
func (c *Coalescer) Stats() CoalescerStats { return c.stats }

// Add offers frame, one inner Ethernet frame. It returns true if the frame is held in
// a flow in progress (it leaves later, through a later Add's or Flush's emit), false if
// emit already received it. Before that, emit may receive flows this frame closes. See
// Coalescer for the rules.
func (c *Coalescer) Add(frame []byte, emit EmitFunc) bool {
	var o offer
	return c.add(frame, false, 0, &o, emit)
}

// AddWithRoom is Add for a frame with room for its virtio_net_hdr in front of it:
// pkt[:HdrLen] is the room, pkt[HdrLen:] the frame (len(pkt) >= HdrLen). If the frame
// leaves as it came in, the Coalescer writes an all-zero header into the room and
// emits the two adjacent, so that every emitted frame is one contiguous TAP write,
// with no copy. The room is written only then, and must not be in use by anything
// else. Frames offered with different tags are never merged (a caller's tag names
// where the frame goes: the same flow bytes in two VXLAN networks stay apart), and
// emit gets the tag back.
func (c *Coalescer) AddWithRoom(pkt []byte, tag uint32, emit EmitFunc) bool {
	var o offer
	return c.add(pkt, true, tag, &o, emit)
}

// AddWithRoomSum is AddWithRoom for a frame whose one's complement sum the caller
// knows to be right: sum is packet.Sum over the whole frame, pkt[HdrLen:], as an outer
// UDP checksum that verified leaves it (packet.Outer.InnerSum). The transport checksums
// are then verified from it, without another pass over the payload, and a TCP or UDP
// frame that leaves unmerged with a checksum that verifies goes out as a merged one does,
// with VIRTIO_NET_HDR_F_NEEDS_CSUM (CHECKSUM_PARTIAL), so that the receiving kernel does
// not sum it once more either. Its checksum field then holds the pseudo-header's sum,
// which the kernel completes should the packet leave the host again.
func (c *Coalescer) AddWithRoomSum(pkt []byte, tag uint32, sum uint16, emit EmitFunc) bool {
	o := offer{sum: sum, sumOK: true}
	return c.add(pkt, true, tag, &o, emit)
}

// add offers a frame: pkt itself, or pkt[HdrLen:] with room; o holds what the caller
// knows of it (its sum), classify fills in the rest.
func (c *Coalescer) add(pkt []byte, room bool, tag uint32, o *offer, emit EmitFunc) bool {
	frame := pkt
	if room {
		frame = pkt[HdrLen:]
	}
	c.stats.Frames++
	c.clock++
	o.key.tag = tag
	switch c.classify(frame, o) {
	case kindOther:
		c.emitSingle(pkt, room, tag, emit)
		return false
	case kindPartial:
		c.closeBetween(&o.key, emit)
		c.emitSingle(pkt, room, tag, emit)
		return false
	}
	if f := c.lookup(&o.key); f != nil {
		if o.cand && c.merge(f, frame, o, emit) {
			return true
		}
		c.close(f, emit)
	}
	if !o.cand || o.flags&tcpPSH != 0 {
		c.emitChecked(pkt, room, tag, o.key.v6, o.key.proto, o.l4, o.hdrEnd, o.end, o.sum, o.sumOK, emit)
		return false
	}
	c.start(pkt, room, o, emit)
	return true
}

// Flush emits every flow in progress. The Coalescer holds no frame afterwards.
func (c *Coalescer) Flush(emit EmitFunc) {
	for i := range c.flows {
		if c.flows[i].active {
			c.close(&c.flows[i], emit)
		}
	}
}

// classify parses frame's headers into o and says what it is. A frame that cannot
// even be located in a flow is kindOther: the kernel judges it.
func (c *Coalescer) classify(frame []byte, o *offer) int {
	if len(frame) < ethLen {
		return kindOther
	}
	var proto uint8
	switch be16(frame[12:14]) {
	case etherTypeIP4:
		if len(frame) < ethLen+ipv4MinLen || frame[ethLen]>>4 != 4 {
			return kindOther
		}
		ihl := int(frame[ethLen]&0x0f) * 4
		total := int(be16(frame[ethLen+2 : ethLen+4]))
		if ihl < ipv4MinLen || total < ihl || ethLen+total > len(frame) {
			return kindOther
		}
		proto = frame[ethLen+9]
		if proto != protoTCP && (proto != protoUDP || !c.cfg.UDP) {
			return kindOther
		}
		copy(o.key.addrs[:8], frame[ethLen+12:ethLen+20])
		o.key.proto = proto
		frag := be16(frame[ethLen+6 : ethLen+8])
		if frag&ipv4FragOff != 0 {
			return kindPartial
		}
		o.end = ethLen + total
		o.l4 = ethLen + ihl
		o.id = be16(frame[ethLen+4 : ethLen+6])
		o.cand = ihl == ipv4MinLen && frag&ipv4MF == 0
	case etherTypeIP6:
		if len(frame) < ethLen+ipv6Len || frame[ethLen]>>4 != 6 {
			return kindOther
		}
		plen := int(be16(frame[ethLen+4 : ethLen+6]))
		if plen == 0 || ethLen+ipv6Len+plen > len(frame) {
			return kindOther
		}
		copy(o.key.addrs[:], frame[ethLen+8:ethLen+40])
		o.key.v6 = true
		proto = frame[ethLen+6]
		switch proto {
		case protoTCP:
		case protoUDP:
			if !c.cfg.UDP {
				return kindOther
			}
		case 0, 43, 44, 51, 60, 135, 139, 140: // extension headers (RFC 8200 and the IANA list)
			return kindPartial // o.key.proto 0: any transport
		default:
			return kindOther
		}
		o.key.proto = proto
		o.end = ethLen + ipv6Len + plen
		o.l4 = ethLen + ipv6Len
		o.cand = true
	default:
		return kindOther
	}
	if o.l4+4 > o.end {
		return kindPartial
	}
	copy(o.key.ports[:], frame[o.l4:o.l4+4])
	if proto == protoTCP {
		if o.l4+tcpMinLen > o.end {
			o.cand = false
			return kindFlow
		}
		doff := int(frame[o.l4+12]>>4) * 4
		if doff < tcpMinLen || o.l4+doff > o.end {
			o.cand = false
			return kindFlow
		}
		o.hdrEnd = o.l4 + doff
		o.payload = o.end - o.hdrEnd
		o.flags = frame[o.l4+13]
		o.seq = be32(frame[o.l4+4 : o.l4+8])
		if o.flags&(tcpSYN|tcpFIN|tcpRST|tcpURG) != 0 || o.flags&tcpACK == 0 || o.payload == 0 {
			o.cand = false
		}
		return kindFlow
	}
	if o.l4+udpLen > o.end {
		o.cand = false
		return kindFlow
	}
	o.hdrEnd = o.l4 + udpLen
	o.payload = o.end - o.hdrEnd
	if int(be16(frame[o.l4+4:o.l4+6])) != o.end-o.l4 || be16(frame[o.l4+6:o.l4+8]) == 0 || o.payload == 0 {
		o.cand = false
	}
	return kindFlow
}

// lookup returns the flow in progress with key k, or nil.
func (c *Coalescer) lookup(k *flowKey) *flow {
	for i := range c.flows {
		f := &c.flows[i]
		if f.active && f.key.ports == k.ports && f.key == *k {
			return f
		}
	}
	return nil
}

// closeBetween closes every flow in progress between the addresses of k, of k's
// protocol or, if k.proto is 0, of any, whatever their tags.
func (c *Coalescer) closeBetween(k *flowKey, emit EmitFunc) {
	for i := range c.flows {
		f := &c.flows[i]
		if f.active && f.key.v6 == k.v6 && f.key.addrs == k.addrs && (k.proto == 0 || k.proto == f.key.proto) {
			c.close(f, emit)
		}
	}
}

// start makes frame the first of a new flow, closing the least recently extended one
// if every slot is taken.
func (c *Coalescer) start(pkt []byte, room bool, o *offer, emit EmitFunc) {
	var f *flow
	for i := range c.flows {
		g := &c.flows[i]
		if !g.active {
			f = g
			break
		}
		if f == nil || g.lastUse < f.lastUse {
			f = g
		}
	}
	if f.active {
		c.close(f, emit)
	}
	f.key = o.key
	f.active = true
	f.copied = false
	f.pkt, f.room = pkt, room
	f.first = pkt
	if room {
		f.first = pkt[HdrLen:]
	}
	f.n = o.end
	f.l4 = o.l4
	f.hdrEnd = o.hdrEnd
	f.gsoSize = o.payload
	f.segs = 1
	f.nextSeq = o.seq + uint32(o.payload)
	f.nextID = o.id + 1
	f.psh = false
	f.lastUse = c.clock
	f.sum, f.sumOK = o.sum, o.sumOK
	f.inPlace = c.cfg.InPlace && room
	f.rest = f.rest[:0]
	f.firstEnd = o.end
}

// merge appends frame's payload to f if the rules allow. It returns false if they do
// not; it clears o.cand if frame itself must not start a flow (a bad checksum).
func (c *Coalescer) merge(f *flow, frame []byte, o *offer, emit EmitFunc) bool {
	if o.l4 != f.l4 || o.hdrEnd != f.hdrEnd || o.payload > f.gsoSize {
		return false
	}
	head := f.first
	if f.copied {
		head = f.buf[HdrLen:]
	}
	if !sameHeaders(head, frame, o, f.key.v6, f.key.proto) {
		return false
	}
	if !f.key.v6 && o.id != f.nextID {
		return false
	}
	if f.key.proto == protoTCP {
		if o.seq != f.nextSeq || o.flags&tcpCWR != 0 {
			return false
		}
	} else if f.segs >= udpMaxSegments {
		return false
	}
	limit := f.limit
	switch {
	case f.inPlace:
		if len(f.rest) == cap(f.rest) {
			return false
		}
		limit = MaxFrameLen
	case !f.copied:
		buf := f.buf
		if buf == nil {
			if c.next >= len(c.store) {
				c.stats.NoBuffer++
				return false
			}
			buf = c.store[c.next]
		}
		limit = min(len(buf)-HdrLen, MaxFrameLen)
	}
	if f.n+o.payload > limit {
		return false
	}
	if f.segs == 1 && !checksumsValid(f.first, f.l4, f.firstEnd, f.key.v6, f.key.proto, f.sum, f.sumOK) {
		c.stats.BadChecksum++
		return false
	}
	if !checksumsValid(frame, o.l4, o.end, f.key.v6, f.key.proto, o.sum, o.sumOK) {
		c.stats.BadChecksum++
		o.cand = false
		return false
	}
	switch {
	case f.inPlace:
		f.rest = append(f.rest, frame[o.hdrEnd:o.end])
	case !f.copied:
		if f.buf == nil {
			f.buf = c.store[c.next]
			c.next++
		}
		f.limit = limit
		copy(f.buf[HdrLen:HdrLen+f.n], f.first[:f.n])
		f.first, f.pkt = nil, nil
		f.copied = true
		fallthrough
	default:
		copy(f.buf[HdrLen+f.n:], frame[o.hdrEnd:o.end])
	}
	f.n += o.payload
	f.segs++
	f.nextSeq += uint32(o.payload)
	f.nextID++
	f.lastUse = c.clock
	if o.flags&tcpPSH != 0 {
		f.psh = true
	}
	if f.psh || o.payload < f.gsoSize || f.n == f.limit ||
		(f.key.proto == protoUDP && f.segs >= udpMaxSegments) {
		c.close(f, emit) // it cannot grow any more
	}
	return true
}

// sameHeaders reports whether frame's headers allow merging it behind head, the
// flow's first frame (or super-frame): everything equal that must stay equal across
// the segments of a super-frame, since they are rebuilt from the first one's headers.
// Both have the same layout (checked by the caller) and are merge candidates.
func sameHeaders(head, frame []byte, o *offer, v6 bool, proto uint8) bool {
	if !bytes.Equal(head[:ethLen], frame[:ethLen]) {
		return false
	}
	ip, hip := frame[ethLen:o.l4], head[ethLen:o.l4]
	if v6 {
		// version, traffic class, flow label; next header, hop limit
		if be32(ip[0:4]) != be32(hip[0:4]) || be16(ip[6:8]) != be16(hip[6:8]) {
			return false
		}
	} else {
		// version, IHL, TOS; DF and the reserved flag; TTL, protocol
		if be16(ip[0:2]) != be16(hip[0:2]) || (ip[6]^hip[6])&0xe0 != 0 || be16(ip[8:10]) != be16(hip[8:10]) {
			return false
		}
	}
	if proto != protoTCP {
		return true
	}
	th, hth := frame[o.l4:o.hdrEnd], head[o.l4:o.hdrEnd]
	return be32(th[8:12]) == be32(hth[8:12]) && // ACK number
		th[12] == hth[12] && // data offset
		(th[13]^hth[13])&^(tcpCWR|tcpPSH) == 0 && // flags but CWR and PSH
		be16(th[14:16]) == be16(hth[14:16]) && // window
		be16(th[18:20]) == be16(hth[18:20]) && // urgent pointer
		bytes.Equal(th[tcpMinLen:], hth[tcpMinLen:]) // options
}

// checksumsValid verifies the IPv4 header checksum (if IPv4) and the transport
// checksum of the IP packet frame[ethLen:end] whose transport header is at l4. With
// sumOK, sum is the whole frame's Sum: the transport part's is what remains once the
// headers' is taken away (one's complement subtraction), so only the headers are read,
// if the frame ends with its IP packet (no Ethernet padding) and l4 is even (it is, for
// the headers classify takes).
func checksumsValid(frame []byte, l4, end int, v6 bool, proto uint8, sum uint16, sumOK bool) bool {
	if !v6 && packet.Checksum(frame[ethLen:l4], 0) != 0 {
		return false
	}
	pseudo := addrSum(frame, v6) + uint32(proto) + uint32(end-l4)
	if sumOK && end == len(frame) && l4%2 == 0 {
		return packet.Checksum(nil, pseudo+uint32(sum)+uint32(^packet.Sum(frame[:l4], 0))) == 0
	}
	return packet.Checksum(frame[l4:end], pseudo) == 0
}

// close emits f and frees its slot.
func (c *Coalescer) close(f *flow, emit EmitFunc) {
	f.active = false
	if f.segs == 1 {
		pkt := f.pkt
		f.first, f.pkt = nil, nil
		c.emitChecked(pkt, f.room, f.key.tag, f.key.v6, f.key.proto, f.l4, f.hdrEnd, f.n, f.sum, f.sumOK, emit)
		return
	}
	// b is the super-frame's headers (and more): the buffer's, or the first frame's own.
	var b, vnetHdr []byte
	if f.inPlace {
		b, vnetHdr = f.first[:f.firstEnd], f.pkt[:HdrLen]
		f.first, f.pkt = nil, nil
	} else {
		f.copied = false
		buf := f.buf
		if !c.cfg.ReuseBuffers {
			f.buf = nil // the caller owns it until Reset
		}
		b, vnetHdr = buf[HdrLen:HdrLen+f.n], buf[:HdrLen]
	}
	if f.key.v6 {
		binary.BigEndian.PutUint16(b[ethLen+4:ethLen+6], uint16(f.n-ethLen-ipv6Len))
	} else {
		binary.BigEndian.PutUint16(b[ethLen+2:ethLen+4], uint16(f.n-ethLen))
		b[ethLen+10], b[ethLen+11] = 0, 0
		binary.BigEndian.PutUint16(b[ethLen+10:ethLen+12], packet.Checksum(b[ethLen:f.l4], 0))
	}
	l4Len := f.n - f.l4
	h := VirtioNetHdr{
		Flags:     FlagNeedsCsum,
		HdrLen:    uint16(f.hdrEnd),
		GSOSize:   uint16(f.gsoSize),
		CsumStart: uint16(f.l4),
	}
	if f.key.proto == protoTCP {
		h.GSOType = GSOTCPv4
		if f.key.v6 {
			h.GSOType = GSOTCPv6
		}
		if b[f.l4+13]&tcpCWR != 0 {
			h.GSOType |= GSOECN
		}
		if f.psh {
			b[f.l4+13] |= tcpPSH
		}
		h.CsumOffset = tcpCsumOffset
	} else {
		h.GSOType = GSOUDPL4
		h.CsumOffset = udpCsumOffset
		binary.BigEndian.PutUint16(b[f.l4+4:f.l4+6], uint16(l4Len))
	}
	// The folded, not inverted, pseudo-header sum: the kernel adds the sum from
	// CsumStart to the end over it and stores the complement (CHECKSUM_PARTIAL).
	at := f.l4 + int(h.CsumOffset)
	binary.BigEndian.PutUint16(b[at:at+2], packet.Sum(nil, addrSum(b, f.key.v6)+uint32(f.key.proto)+uint32(l4Len)))
	h.Encode(vnetHdr)
	c.stats.SuperFrames++
	c.stats.Merged += uint64(f.segs)
	if f.inPlace {
		emit(f.key.tag, vnetHdr, b, f.rest)
		return
	}
	emit(f.key.tag, vnetHdr, b, nil)
}

// emitChecked lets a frame out unmerged: as emitSingle does, unless its sum is known
// (AddWithRoomSum) and its transport checksum verifies by it, in which case it goes out
// with VIRTIO_NET_HDR_F_NEEDS_CSUM and the pseudo-header's sum in its checksum field, as
// a super-frame does, so that the receiver takes it as verified. v6, proto, l4, hdrEnd
// and end describe the frame as classify found it.
func (c *Coalescer) emitChecked(pkt []byte, room bool, tag uint32, v6 bool, proto uint8, l4, hdrEnd, end int,
	sum uint16, sumOK bool, emit EmitFunc) {
	if !room || !sumOK || (proto != protoTCP && proto != protoUDP) {
		c.emitSingle(pkt, room, tag, emit)
		return
	}
	frame := pkt[HdrLen:]
	if !checksumsValid(frame, l4, end, v6, proto, sum, sumOK) ||
		proto == protoUDP && be16(frame[l4+6:l4+8]) == 0 { // no UDP checksum: nothing to complete
		c.emitSingle(pkt, room, tag, emit)
		return
	}
	c.stats.Singles++
	h := VirtioNetHdr{Flags: FlagNeedsCsum, HdrLen: uint16(hdrEnd), CsumStart: uint16(l4), CsumOffset: tcpCsumOffset}
	if proto == protoUDP {
		h.CsumOffset = udpCsumOffset
	}
	at := l4 + int(h.CsumOffset)
	binary.BigEndian.PutUint16(frame[at:at+2], packet.Sum(nil, addrSum(frame, v6)+uint32(proto)+uint32(end-l4)))
	h.Encode(pkt[:HdrLen])
	emit(tag, pkt[:HdrLen], frame, nil)
}

// emitSingle lets a frame out as it came, behind a plain virtio_net_hdr: pkt itself,
// or, with room, pkt[HdrLen:] behind a header written into pkt[:HdrLen].
func (c *Coalescer) emitSingle(pkt []byte, room bool, tag uint32, emit EmitFunc) {
	c.stats.Singles++
	if !room {
		emit(tag, c.plain[:], pkt, nil)
		return
	}
	clear(pkt[:HdrLen])
	emit(tag, pkt[:HdrLen], pkt[HdrLen:], nil)
}
