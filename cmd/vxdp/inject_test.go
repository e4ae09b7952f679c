//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/topo"
)

// Parameters of TestInjectBadInput.
const (
	// injectN is how many frames of each case are sent.
	injectN = 10
	// injectFlood is how many frames with fresh source MACs the FDB flood sends, and
	// injectFDBMax the fdb_max vxdp runs with, so the flood overflows the table.
	injectFlood  = 200
	injectFDBMax = 64
	// injectPort is the inner UDP port of the injected frames; a socket in container B
	// listens there.
	injectPort = 7777
	// injectMarker starts the payload of every injected inner frame, followed by the case's
	// index: a capture in the container finds what reached it.
	injectMarker = "vxdp-inject:"
)

// injectWire is what the injector needs to know to build frames toward host B's VTEP.
type injectWire struct {
	srcMAC, dstMAC net.HardwareAddr // wire A, wire B
	src, dst       net.IP           // underlay A, underlay B
	containerMAC   net.HardwareAddr // container B's eth0: vxdp's TAP
	innerSrc       net.IP           // a container address behind A that does not exist
	innerDst       net.IP           // container B
	vni            uint32
	port           uint16
	innerMTU       int // container B's MTU
	seq            int // makes IP IDs and source ports differ between frames
}

// injectCase is one kind of frame the injector sends and what it must do on host B.
type injectCase struct {
	name string
	// build returns the frame to send, given a valid one (frame) to start from.
	build func(w *injectWire, id int) []byte
	// metrics are the series of vxdp's /metrics that must rise, by how much per frame.
	metrics map[string]int
	// kernel are host B's SNMP counters that must rise (frames XDP passes to the kernel).
	kernel map[string]int
	// delivered: the frame is valid and reaches container B.
	delivered bool
}

// Metric series of vxdp's admin server, as parsePrometheus keys them.
func parseDrop(reason string) string { return `vxdp_parse_drops_total{reason="` + reason + `"}` }
func dpDrop(reason string) string    { return `vxdp_dataplane_drops_total{reason="` + reason + `"}` }
func xdpDrop(reason string) string   { return `vxdp_xdp_drops_total{reason="` + reason + `"}` }

// innerUDP is an inner Ethernet frame from a made-up container behind A to container B,
// UDP to injectPort, whose payload is the marker of case id and size bytes in all. vlans
// adds 802.1Q tags.
func (w *injectWire) innerUDP(id int, src net.HardwareAddr, vlans []uint16, size int) []byte {
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: w.containerMAC, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	for i, vid := range vlans {
		if i == 0 {
			eth.EthernetType = layers.EthernetTypeDot1Q
		}
		next := layers.EthernetTypeIPv4
		if i+1 < len(vlans) {
			next = layers.EthernetTypeDot1Q
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: vid, Type: next})
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: w.innerSrc, DstIP: w.innerDst}
	udp := &layers.UDP{SrcPort: 40000, DstPort: injectPort}
	udp.SetNetworkLayerForChecksum(ip)
	hdr := 14 + 4*len(vlans) + 20 + 8
	payload := []byte(fmt.Sprintf("%s%02d:", injectMarker, id))
	payload = append(payload, bytes.Repeat([]byte{'.'}, max(0, size-hdr-len(payload)))...)
	ls = append(ls, ip, udp, gopacket.Payload(payload))
	return serializeLayers(ls...)
}

// vxlan wraps inner in the outer headers host A's kernel would write: IPv4 from underlay A
// to B (options if given), UDP checksum 0, the topology's VNI.
func (w *injectWire) vxlan(inner []byte, options []layers.IPv4Option) []byte {
	w.seq++
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(w.seq), Protocol: layers.IPProtocolUDP,
		SrcIP: w.src, DstIP: w.dst, Options: options}
	udp := &layers.UDP{SrcPort: layers.UDPPort(49152 + w.seq%16000), DstPort: layers.UDPPort(w.port)}
	udp.SetNetworkLayerForChecksum(ip)
	f := serializeLayers(&layers.Ethernet{SrcMAC: w.srcMAC, DstMAC: w.dstMAC, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, &layers.VXLAN{ValidIDFlag: true, VNI: w.vni}, gopacket.Payload(inner))
	u := 14 + int(f[14]&0x0f)*4
	f[u+6], f[u+7] = 0, 0
	return f
}

func serializeLayers(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(fmt.Sprintf("serialize test frame: %v", err))
	}
	return append([]byte(nil), buf.Bytes()...)
}

// ipv4Fix recomputes the outer IPv4 header checksum after a case changed the header.
func ipv4Fix(f []byte) []byte {
	hl := int(f[14]&0x0f) * 4
	if hl < 20 {
		hl = 20
	}
	f[24], f[25] = 0, 0
	var s uint32
	for i := 14; i < 14+hl; i += 2 {
		s += uint32(f[i])<<8 | uint32(f[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	binary.BigEndian.PutUint16(f[24:26], ^uint16(s))
	return f
}

// setLengths rewrites the outer IPv4 total length and the UDP length for a frame cut to
// size bytes, and fixes the header checksum.
func setLengths(f []byte, size int) []byte {
	f = f[:size]
	binary.BigEndian.PutUint16(f[16:18], uint16(size-14))
	binary.BigEndian.PutUint16(f[38:40], uint16(size-34))
	return ipv4Fix(f)
}

var remoteContainerMAC = net.HardwareAddr{0x02, 0x42, 0, 0, 0, 0x99}

func injectCases() []injectCase {
	valid := func(w *injectWire, id int) []byte {
		return w.vxlan(w.innerUDP(id, remoteContainerMAC, nil, 120), nil)
	}
	mod := func(fn func(f []byte) []byte) func(*injectWire, int) []byte {
		return func(w *injectWire, id int) []byte { return fn(valid(w, id)) }
	}
	one := func(series ...string) map[string]int {
		m := map[string]int{}
		for _, s := range series {
			m[s]++
		}
		return m
	}
	innerBad := func(reason string) map[string]int { return one(parseDrop(reason), dpDrop("bad_inner")) }
	withSrc := func(mac net.HardwareAddr) func(*injectWire, int) []byte {
		return func(w *injectWire, id int) []byte { return w.vxlan(w.innerUDP(id, mac, nil, 120), nil) }
	}
	return []injectCase{
		{name: "valid", build: valid, delivered: true},
		{name: "valid with ipv4 options", delivered: true, build: func(w *injectWire, id int) []byte {
			ra := layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}
			return w.vxlan(w.innerUDP(id, remoteContainerMAC, nil, 120), []layers.IPv4Option{ra})
		}},
		{name: "udp payload shorter than vxlan", metrics: one(parseDrop("short_vxlan")),
			build: mod(func(f []byte) []byte { return setLengths(f, 42+4) })},
		{name: "I flag clear", metrics: one(parseDrop("vxlan_flags")),
			build: mod(func(f []byte) []byte { f[42] = 0; return f })},
		{name: "reserved flag bit", metrics: one(parseDrop("vxlan_reserved")),
			build: mod(func(f []byte) []byte { f[42] |= 0x40; return f })},
		{name: "reserved bit after the flags", metrics: one(parseDrop("vxlan_reserved")),
			build: mod(func(f []byte) []byte { f[44] = 0x10; return f })},
		{name: "reserved last byte", metrics: one(parseDrop("vxlan_reserved")),
			build: mod(func(f []byte) []byte { f[49] = 0x01; return f })},
		{name: "unknown vni", metrics: one(dpDrop("unknown_vni")),
			build: mod(func(f []byte) []byte { f[48] ^= 0x01; return f })},
		{name: "vni 0", metrics: one(parseDrop("vni_zero")),
			build: mod(func(f []byte) []byte { f[46], f[47], f[48] = 0, 0, 0; return f })},
		{name: "source not a remote vtep", metrics: one(xdpDrop("unknown_remote")),
			build: mod(func(f []byte) []byte { f[29] = 99; return ipv4Fix(f) })},
		{name: "bad ipv4 header checksum", metrics: one(parseDrop("ipv4_checksum")),
			build: mod(func(f []byte) []byte { f[24] ^= 0x55; return f })},
		{name: "ihl below 5", kernel: map[string]int{"Ip.InHdrErrors": 1},
			build: mod(func(f []byte) []byte { f[14] = 0x44; return ipv4Fix(f) })},
		{name: "total length beyond the frame", metrics: one(parseDrop("ipv4_total_length")),
			build: mod(func(f []byte) []byte {
				binary.BigEndian.PutUint16(f[16:18], uint16(len(f)-14+40))
				return ipv4Fix(f)
			})},
		{name: "udp length beyond the ip payload", metrics: one(parseDrop("udp_length")),
			build: mod(func(f []byte) []byte { binary.BigEndian.PutUint16(f[38:40], uint16(len(f)-34+1)); return f })},
		{name: "udp length short of the ip payload", metrics: one(parseDrop("udp_length")),
			build: mod(func(f []byte) []byte { binary.BigEndian.PutUint16(f[38:40], uint16(len(f)-34-2)); return f })},
		{name: "first fragment", metrics: one(xdpDrop("fragment")),
			build: mod(func(f []byte) []byte { f[20] |= 0x20; return ipv4Fix(f) })},
		{name: "later fragment", kernel: map[string]int{"Ip.ReasmReqds": 1},
			build: mod(func(f []byte) []byte { f[21] = 0x40; return ipv4Fix(f) })},
		{name: "source route option", metrics: one(parseDrop("ipv4_options")), build: func(w *injectWire, id int) []byte {
			lsrr := layers.IPv4Option{OptionType: 131, OptionLength: 7, OptionData: []byte{4, 192, 168, 77, 3}}
			return w.vxlan(w.innerUDP(id, remoteContainerMAC, nil, 120), []layers.IPv4Option{lsrr})
		}},
		{name: "wrong udp checksum", metrics: one(parseDrop("udp_checksum")),
			build: mod(func(f []byte) []byte { f[40], f[41] = 0x12, 0x34; return f })},
		{name: "inner shorter than ethernet", metrics: innerBad("short_inner"),
			build: mod(func(f []byte) []byte { return setLengths(f, 50+10) })},
		{name: "inner ip header cut", metrics: innerBad("short_inner_ip"),
			build: mod(func(f []byte) []byte { return setLengths(f, 50+14+16) })},
		{name: "inner source multicast", metrics: innerBad("inner_src_mac"), build: withSrc(net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1})},
		{name: "inner source broadcast", metrics: innerBad("inner_src_mac"), build: withSrc(layers.EthernetBroadcast)},
		{name: "inner source zero", metrics: innerBad("inner_src_mac"), build: withSrc(make(net.HardwareAddr, 6))},
		{name: "inner source is the container's", metrics: one(dpDrop("local_mac_from_remote")),
			build: func(w *injectWire, id int) []byte { return w.vxlan(w.innerUDP(id, w.containerMAC, nil, 120), nil) }},
		{name: "inner 802.1q", metrics: innerBad("inner_vlan"),
			build: func(w *injectWire, id int) []byte {
				return w.vxlan(w.innerUDP(id, remoteContainerMAC, []uint16{7}, 120), nil)
			}},
		{name: "inner beyond the mtu", metrics: one(dpDrop("inner_too_big")),
			build: func(w *injectWire, id int) []byte {
				return w.vxlan(w.innerUDP(id, remoteContainerMAC, nil, w.innerMTU+14+1), nil)
			}},
		{name: "inner of the mtu", delivered: true,
			build: func(w *injectWire, id int) []byte {
				return w.vxlan(w.innerUDP(id, remoteContainerMAC, nil, w.innerMTU+14), nil)
			}},
	}
}

// TestInjectBadInput sends, from host A's side of the wire, frames of every bad-input case
// toward vxdp's VTEP on host B while an iperf3 flow runs through the overlay (the kernel's
// vxlan on A, vxdp on B). Each case must be counted under its own reason, exactly once per
// frame, and none may reach container B, while the valid ones do and the flow goes on. It
// also floods the FDB with fresh source MACs and has container B send VXLAN of its own.
// The counts come from the admin server's /metrics (checked against the exit log), and
// again with the admin server off, from the exit log alone.
func TestInjectBadInput(t *testing.T) {
	needRoot(t)
	t.Run("Metrics", func(t *testing.T) { injectBadInput(t, "") })
	t.Run("ExitLog", func(t *testing.T) { injectBadInput(t, "admin: \"\"\n") })
}

func injectBadInput(t *testing.T, extra string) {
	ctx := context.Background()
	// The wire carries a little more than the overlay needs, so that an inner frame one
	// byte beyond container B's MTU still fits on it in its outer headers.
	tp, err := topo.New(ctx, topo.Options{Prefix: topo.Prefix("inj"), WireMTU: 1600, OverlayMTU: topo.DefaultOverlayMTU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("remove topology: %v", err)
		}
	})
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDPWith(t, tp, topo.SideB, fmt.Sprintf("fdb_max: %d\n%s", injectFDBMax, extra))
	admin := dataplane.DefaultAdmin

	w := &injectWire{
		src: tp.UnderlayA.Addr().AsSlice(), dst: tp.UnderlayB.Addr().AsSlice(),
		innerSrc: net.IPv4(10, 42, 0, 99).To4(), innerDst: tp.OverlayB.Addr().AsSlice(),
		vni: tp.VNI, port: tp.Port, innerMTU: tp.OverlayMTU,
	}
	w.srcMAC = ifaceMAC(t, tp.HostA, tp.WireA)
	w.dstMAC = ifaceMAC(t, tp.HostB, tp.WireB)
	w.containerMAC = ifaceMAC(t, tp.ContainerB, "eth0")

	// Container B: a socket on the injected frames' port, and a capture of everything
	// its eth0 receives but TCP (the iperf3 flow), to find the markers.
	var ln *net.UDPConn
	err = tp.ContainerB.Do(func() (err error) {
		ln, err = net.ListenUDP("udp4", &net.UDPAddr{IP: w.innerDst, Port: injectPort})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	received := make(chan map[int]int, 1)
	go func() {
		got := map[int]int{}
		buf := make([]byte, 2048)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				received <- got
				return
			}
			if id, ok := markerID(buf[:n]); ok {
				got[id]++
			}
		}
	}()
	capture := startCapture(t, tp.ContainerB, "eth0")

	// The flow runs through vxdp's ingress the whole time; the frames go in the middle.
	flow := make(chan error, 1)
	var flowRes topo.Iperf3Result
	go func() {
		var err error
		flowRes, err = topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: tp.OverlayB.Addr().String(),
			Duration: 8 * time.Second, Bitrate: "200M"}.Run(ctx)
		flow <- err
	}()
	time.Sleep(2 * time.Second)
	kernelBefore, err := tp.HostB.Netstat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The admin server's /metrics gives counts before and after; without it (admin: ""),
	// the exit log gives the counts at the end, from zero.
	before, metrics := scrape(t, tp.HostB, admin)

	cases := injectCases()
	var frames [][]byte
	for i := 0; i < injectN; i++ {
		for id, c := range cases {
			frames = append(frames, c.build(w, id))
		}
	}
	// The FDB flood: valid frames from injectFlood fresh source MACs, as a misbehaving or
	// hostile remote container would send them.
	floodID := len(cases)
	for i := 0; i < injectFlood; i++ {
		mac := net.HardwareAddr{0x02, 0xfd, 0, 0, byte(i >> 8), byte(i)}
		frames = append(frames, w.vxlan(w.innerUDP(floodID, mac, nil, 120), nil))
	}
	sendOnWire(t, tp.HostA, tp.WireA, frames)
	// Container B sends VXLAN of its own toward A's VTEP port: no tunnel in the tunnel.
	// An unconnected socket: should a datagram get through, the ICMP error coming back
	// must not fail the writes before the counters can tell.
	err = tp.ContainerB.Do(func() error {
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		to := &net.UDPAddr{IP: tp.OverlayA.Addr().AsSlice(), Port: int(tp.Port)}
		for i := 0; i < injectN; i++ {
			if _, err := c.WriteToUDP([]byte("\x08\x00\x00\x00\x00\x00\x2a\x00 tunnel in tunnel"), to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // vxdp has taken every frame long before; the TAP queue drains

	var after map[string]float64
	if metrics {
		after, _ = scrape(t, tp.HostB, admin)
	}
	kernelAfter, err := tp.HostB.Netstat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-flow; err != nil {
		t.Fatalf("the iperf3 flow through vxdp failed: %v", err)
	}
	checkFlowKeptGoing(t, flowRes)

	// Nothing of a bad case reached container B; every valid frame did.
	seen := capture.stop()
	ln.Close()
	got := <-received
	for id, c := range cases {
		wantSeen := 0
		if c.delivered {
			wantSeen = injectN
		}
		if seen[id] != wantSeen || got[id] != wantSeen {
			t.Errorf("case %q: %d frames captured on container B's eth0, %d received by its socket; want %d",
				c.name, seen[id], got[id], wantSeen)
		}
	}
	if seen[floodID] != injectFlood {
		t.Errorf("FDB flood: %d of %d frames reached container B", seen[floodID], injectFlood)
	}

	// The exit log names every drop counter that is not zero, with /metrics' last values.
	var final map[string]float64
	if metrics {
		final, _ = scrape(t, tp.HostB, admin)
	}
	if err := v.Stop(); err != nil {
		t.Fatalf("vxdp exit: %v", err)
	}
	logged := exitLogSeries(t, v.Log())
	if metrics {
		checkExitLog(t, logged, final)
	} else {
		after = logged
	}

	// Every case's series rose by exactly what its frames make; no other drop series moved.
	want := map[string]int{dpDrop("vxlan_from_port"): injectN}
	wantKernel := map[string]int{}
	for _, c := range cases {
		for s, n := range c.metrics {
			want[s] += n * injectN
		}
		for k, n := range c.kernel {
			wantKernel[k] += n * injectN
		}
	}
	for s, n := range want {
		if got := after[s] - before[s]; got != float64(n) {
			t.Errorf("%s rose by %v, want %d", s, got, n)
		}
	}
	for s, a := range after {
		if isInputDropSeries(s) && a != before[s] && want[s] == 0 {
			t.Errorf("%s rose by %v, want 0", s, a-before[s])
		}
	}
	for k, n := range wantKernel {
		if got := kernelAfter[k] - kernelBefore[k]; got != int64(n) {
			t.Errorf("host B's %s rose by %d, want %d", k, got, n)
		}
	}

	// The flood overflowed the FDB: capped (the admin server tells), old entries evicted
	// and counted.
	evicted := after[fdbEvicted] - before[fdbEvicted]
	if evicted < float64(injectFlood-injectFDBMax) {
		t.Errorf("after %d fresh MACs: %v evicted from an FDB of %d", injectFlood, evicted, injectFDBMax)
	}
	if entries := after[`vxdp_fdb_entries{vni="42"}`]; metrics && entries > injectFDBMax {
		t.Errorf("after %d fresh MACs: %v FDB entries, cap %d", injectFlood, entries, injectFDBMax)
	}
	t.Logf("counts from /metrics: %v; FDB flood: %v evicted; flow %.2f Gbit/s, %d retransmits", metrics, evicted,
		flowRes.BitsPerSecond/1e9, flowRes.Retransmits)
}

// fdbEvicted is the series of VNI 42's FDB evictions; the exit log's fdb_evicted counts all
// VNIs', which here is the same.
const fdbEvicted = `vxdp_fdb_events_total{event="evicted",vni="42"}`

// exitLogSeries reads the drop counters of vxdp's exit log (its msg=counters line) into
// the series names of /metrics.
func exitLogSeries(t *testing.T, log string) map[string]float64 {
	t.Helper()
	line := ""
	for _, l := range strings.Split(log, "\n") {
		if slices.Contains(strings.Fields(l), "msg=counters") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no counters line in vxdp's log:\n%s", log)
	}
	out := map[string]float64{}
	for _, kv := range strings.Fields(line) {
		k, val, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(k, "parse_drop_"):
			out[parseDrop(strings.TrimPrefix(k, "parse_drop_"))] = float64(n)
		case strings.HasPrefix(k, "dataplane_drop_"):
			out[dpDrop(strings.TrimPrefix(k, "dataplane_drop_"))] = float64(n)
		case strings.HasPrefix(k, "xdp_drop_"):
			out[xdpDrop(strings.TrimPrefix(k, "xdp_drop_"))] = float64(n)
		case k == "fdb_evicted":
			out[fdbEvicted] = float64(n)
		}
	}
	return out
}

// checkExitLog compares the drop counters of vxdp's exit log with the last /metrics scrape:
// each non-zero one is logged with the same value, and no zero one is logged. The kernel's
// drops at the ports (vxdp_port_kernel_drops_total) are the kernel's count, not logged.
func checkExitLog(t *testing.T, logged, metrics map[string]float64) {
	t.Helper()
	nonZero := 0
	for s, n := range metrics {
		name := strings.SplitN(s, "{", 2)[0]
		if (!strings.HasSuffix(name, "drops_total") || name == "vxdp_port_kernel_drops_total") && s != fdbEvicted {
			continue
		}
		got, ok := logged[s]
		if got != n || ok != (n != 0) {
			t.Errorf("exit log: %s = %v (logged %v); /metrics: %v", s, got, ok, n)
		}
		if n != 0 {
			nonZero++
		}
	}
	for s := range logged {
		if _, ok := metrics[s]; !ok {
			t.Errorf("exit log has %s, /metrics has no such series", s)
		}
	}
	if nonZero == 0 {
		t.Errorf("no drop counter was non-zero: the comparison proves nothing")
	}
}

// isInputDropSeries reports whether a series is one of vxdp's drop counters that input
// moves. Three dataplane reasons count resources running out under load (a full TAP or
// TX ring, a next hop not yet resolved), which the flow may cause whatever is injected.
func isInputDropSeries(s string) bool {
	switch s {
	case dpDrop("tap_write"), dpDrop("tx_full"), dpDrop("no_neighbour"):
		return false
	}
	return strings.HasPrefix(s, "vxdp_parse_drops_total{") || strings.HasPrefix(s, "vxdp_dataplane_drops_total{") ||
		strings.HasPrefix(s, "vxdp_xdp_drops_total{")
}

// checkFlowKeptGoing checks that every one-second interval of the iperf3 run moved data.
func checkFlowKeptGoing(t *testing.T, res topo.Iperf3Result) {
	t.Helper()
	var j struct {
		Intervals []struct {
			Sum struct {
				Bytes float64 `json:"bytes"`
			} `json:"sum"`
		} `json:"intervals"`
	}
	if err := json.Unmarshal(res.JSON, &j); err != nil {
		t.Fatalf("iperf3 JSON: %v", err)
	}
	if len(j.Intervals) < 7 {
		t.Fatalf("iperf3 reported %d intervals, want 8", len(j.Intervals))
	}
	for i, iv := range j.Intervals {
		if iv.Sum.Bytes <= 0 {
			t.Errorf("the flow stalled in second %d", i+1)
		}
	}
}

// markerID finds an injected frame's case index in b.
func markerID(b []byte) (int, bool) {
	i := bytes.Index(b, []byte(injectMarker))
	if i < 0 || len(b) < i+len(injectMarker)+2 {
		return 0, false
	}
	id, err := strconv.Atoi(string(b[i+len(injectMarker) : i+len(injectMarker)+2]))
	return id, err == nil
}

// ifaceMAC returns the MAC of interface name in namespace ns.
func ifaceMAC(t *testing.T, ns topo.NS, name string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// packetSocket opens an AF_PACKET socket bound to interface name in namespace ns.
func packetSocket(t *testing.T, ns topo.NS, name string) (fd int, ifindex int) {
	t.Helper()
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	return fd, ifindex
}

// sendOnWire writes frames on interface name of namespace ns, one every 200 µs: the
// flow through vxdp keeps the rings busy enough without a burst on top.
func sendOnWire(t *testing.T, ns topo.NS, name string, frames [][]byte) {
	t.Helper()
	fd, ifindex := packetSocket(t, ns, name)
	defer unix.Close(fd)
	for i, f := range frames {
		to := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
		copy(to.Addr[:], f[0:6])
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			t.Fatalf("send frame %d (%d bytes): %v", i, len(f), err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// capture counts, by case index, the injected frames an interface receives.
type capture struct {
	fd   int
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen map[int]int
	done bool
}

// startCapture opens a packet socket on interface name of namespace ns with a filter that
// drops TCP over IPv4 (the flow), and counts the markers of what it receives until stop.
func startCapture(t *testing.T, ns topo.NS, name string) *capture {
	t.Helper()
	fd, _ := packetSocket(t, ns, name)
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 12},                    // EtherType
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 2, K: 0x0800}, // not IPv4: keep
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 14 + 9},                // IP protocol
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: unix.IPPROTO_TCP},
		{Code: unix.BPF_RET | unix.BPF_K, K: 1 << 16}, // keep
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},       // drop
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		t.Fatalf("attach capture filter: %v", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	c := &capture{fd: fd, seen: map[int]int{}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			c.mu.Lock()
			done := c.done
			c.mu.Unlock()
			if err == nil && from.(*unix.SockaddrLinklayer).Pkttype != unix.PACKET_OUTGOING {
				if id, ok := markerID(buf[:n]); ok {
					c.mu.Lock()
					c.seen[id]++
					c.mu.Unlock()
				}
			}
			if done && err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

// stop ends the capture once the socket has been drained and returns the counts.
func (c *capture) stop() map[int]int {
	c.mu.Lock()
	already := c.done
	c.done = true
	c.mu.Unlock()
	if !already {
		c.wg.Wait()
		unix.Close(c.fd)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.seen)
}

// scrape reads vxdp's /metrics from inside namespace ns: the connection is opened there
// (the admin server listens on the namespace's loopback), then used from here. ok is false
// when nothing listens at addr: vxdp runs without its admin server.
func scrape(t *testing.T, ns topo.NS, addr string) (_ map[string]float64, ok bool) {
	t.Helper()
	var conn net.Conn
	err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	})
	if errors.Is(err, unix.ECONNREFUSED) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("connect to vxdp's admin server: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	m, err := parsePrometheus(string(body))
	if err != nil {
		t.Fatal(err)
	}
	return m, true
}

// parsePrometheus reads the text exposition format into series keyed name{l1="v1",...}
// with the labels sorted by name, so that keys do not depend on the exporter's order.
func parsePrometheus(text string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("parse metrics: line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("parse metrics: line %q: %w", line, err)
		}
		series := line[:i]
		if name, labels, ok := strings.Cut(series, "{"); ok {
			parts := strings.Split(strings.TrimSuffix(labels, "}"), ",")
			slices.Sort(parts)
			series = name + "{" + strings.Join(parts, ",") + "}"
		}
		out[series] = v
	}
	return out, nil
}
