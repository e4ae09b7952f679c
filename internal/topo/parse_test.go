//go:build linux

package topo

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vxdp/vxdp/dataplane"
)

// ethtoolSample is `ethtool -k` output of a veth on Linux 6.18, shortened.
const ethtoolSample = `Features for ethA:
rx-checksumming: on
tx-checksumming: on
	tx-checksum-ipv4: off [fixed]
	tx-checksum-ip-generic: on
scatter-gather: on
tcp-segmentation-offload: on
	tx-tcp-segmentation: on
	tx-tcp6-segmentation: on
generic-segmentation-offload: on
generic-receive-offload: off
large-receive-offload: off [fixed]
tx-gso-partial: off [fixed]
tx-udp-segmentation: on
tx-gso-list: on
rx-gro-list: off
hw-tc-offload: off [requested on]
`

func TestParseFeatures(t *testing.T) {
	fs := parseFeatures(ethtoolSample)
	want := map[string]feature{
		"rx-checksumming":              {on: true},
		"tx-checksumming":              {on: true},
		"tx-checksum-ipv4":             {fixed: true},
		"tx-checksum-ip-generic":       {on: true},
		"scatter-gather":               {on: true},
		"tcp-segmentation-offload":     {on: true},
		"tx-tcp-segmentation":          {on: true},
		"tx-tcp6-segmentation":         {on: true},
		"generic-segmentation-offload": {on: true},
		"generic-receive-offload":      {},
		"large-receive-offload":        {fixed: true},
		"tx-gso-partial":               {fixed: true},
		"tx-udp-segmentation":          {on: true},
		"tx-gso-list":                  {on: true},
		"rx-gro-list":                  {},
		"hw-tc-offload":                {},
	}
	if len(fs) != len(want) {
		t.Errorf("parsed %d features, want %d: %v", len(fs), len(want), fs)
	}
	for name, w := range want {
		got, ok := fs[name]
		if !ok {
			t.Errorf("feature %s missing", name)
			continue
		}
		if got != w {
			t.Errorf("feature %s = %+v, want %+v", name, got, w)
		}
	}
	if _, ok := fs["Features for ethA"]; ok {
		t.Error("header line parsed as a feature")
	}
}

func TestIsWireOffload(t *testing.T) {
	for name, want := range map[string]bool{
		"tcp-segmentation-offload":     true,
		"tx-tcp-segmentation":          true,
		"tx-udp_tnl-csum-segmentation": true,
		"tx-udp-segmentation":          true,
		"tx-checksum-ip-generic":       true,
		"rx-gro-list":                  true,
		"generic-receive-offload":      false, // a NIC's driver does GRO
		"rx-checksumming":              false,
		"scatter-gather":               false,
		"rx-vlan-offload":              false,
		"highdma":                      false,
	} {
		if got := isWireOffload(name); got != want {
			t.Errorf("isWireOffload(%q) = %v, want %v", name, got, want)
		}
		// The plain wire turns off GRO as well.
		if got, want := isPlainOffload(name), want || name == "generic-receive-offload"; got != want {
			t.Errorf("isPlainOffload(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzParseFeatures(f *testing.F) {
	f.Add(ethtoolSample)
	f.Add("")
	f.Add("x: on\n: off\nname with space: on\ny: maybe\nz:\n")
	f.Add("a: off [requested on]\n\tb: on [fixed]")
	f.Fuzz(func(t *testing.T, out string) {
		for name, feat := range parseFeatures(out) {
			if name == "" || strings.ContainsAny(name, " \t\n") {
				t.Fatalf("bad feature name %q", name)
			}
			if !strings.Contains(out, name+": ") {
				t.Fatalf("feature %q not followed by \": \" in input", name)
			}
			if feat.on && !strings.Contains(out, "on") || feat.fixed && !strings.Contains(out, "[fixed]") {
				t.Fatalf("feature %q = %+v not backed by the input", name, feat)
			}
		}
	})
}

// echoReply builds an ICMP echo reply with a valid checksum.
func echoReply(id, seq uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	buildEchoRequest(b, id, seq)
	b[0] = icmpEchoReply
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[2:], inetChecksum(b))
	return b
}

func TestParseEchoReply(t *testing.T) {
	id, seq, ok := parseEchoReply(echoReply(0x1234, 7, pingPayload))
	if !ok || id != 0x1234 || seq != 7 {
		t.Fatalf("parseEchoReply = %#x, %d, %v; want 0x1234, 7, true", id, seq, ok)
	}
	// An odd length exercises the checksum's trailing byte.
	if _, _, ok := parseEchoReply(echoReply(1, 2, 3)); !ok {
		t.Error("odd-length reply rejected")
	}
	corrupt := echoReply(1, 2, 8)
	corrupt[9] ^= 0x40
	if _, _, ok := parseEchoReply(corrupt); ok {
		t.Error("reply with a bad checksum accepted")
	}
	req := make([]byte, 8+pingPayload)
	buildEchoRequest(req, 1, 2)
	if _, _, ok := parseEchoReply(req); ok {
		t.Error("echo request accepted as a reply")
	}
	if inetChecksum(req) != 0 {
		t.Error("echo request checksum does not verify")
	}
	if _, _, ok := parseEchoReply(echoReply(1, 2, 0)[:7]); ok {
		t.Error("truncated reply accepted")
	}
}

// TestInetChecksum checks the RFC 1071 example: bytes 00 01 f2 03 f4 f5 f6 f7
// sum to 0xddf2, so the checksum is its complement.
func TestInetChecksum(t *testing.T) {
	if got := inetChecksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("inetChecksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
}

func FuzzParseEchoReply(f *testing.F) {
	f.Add(echoReply(0x1234, 7, pingPayload))
	f.Add(echoReply(0, 0, 0))
	f.Add([]byte{0, 0, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, seq, ok := parseEchoReply(b)
		if !ok {
			return
		}
		if len(b) < 8 || b[0] != icmpEchoReply || inetChecksum(b) != 0 {
			t.Fatalf("accepted a message that is not an intact echo reply: %x", b)
		}
		if id != binary.BigEndian.Uint16(b[4:]) || seq != binary.BigEndian.Uint16(b[6:]) {
			t.Fatalf("id/seq %d/%d do not match message %x", id, seq, b)
		}
	})
}

func TestPrefixPID(t *testing.T) {
	for _, c := range []struct {
		name, tag string
		pid       int
		ok        bool
	}{
		{"vxt-123-0-hA", "t", 123, true},
		{"vxt-123-17-cB", "t", 123, true},
		{"vxbench-9-0-hB", "bench", 9, true},
		{"vxa-b-9-0-hB", "a-b", 9, true},
		{"vxt-123-0-hA", "te", 0, false},
		{"vxte-123-0-hA", "t", 0, false},
		{"vxt-123-0-xx", "t", 0, false},
		{"vxclu-123-0-sw", "clu", 123, true},
		{"vxclu-123-0-h8", "clu", 123, true},
		{"vxclu-123-0-c0", "clu", 123, true},
		{"vxclu-123-0-h9", "clu", 0, false},
		{"vxclu-123-0-h", "clu", 0, false},
		{"vxt-abc-0-hA", "t", 0, false},
		{"vxt-0-0-hA", "t", 0, false},
		{"vxt-123-hA", "t", 0, false},
		{"other", "t", 0, false},
	} {
		pid, ok := prefixPID(c.name, c.tag)
		if pid != c.pid || ok != c.ok {
			t.Errorf("prefixPID(%q, %q) = %d, %v; want %d, %v", c.name, c.tag, pid, ok, c.pid, c.ok)
		}
	}
	p := Prefix("t")
	if pid, ok := prefixPID(p+"-cA", "t"); !ok || pid <= 0 {
		t.Errorf("prefixPID does not recognise Prefix's output %q", p)
	}
	if Prefix("t") == p {
		t.Error("Prefix returned the same prefix twice")
	}
}

func TestValidate(t *testing.T) {
	ok := Options{}
	ok.setDefaults()
	if err := ok.validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if ok.WireMTU != 1500 || ok.OverlayMTU != 1450 || ok.VNI != 42 || ok.Port != 4789 ||
		ok.WireQueues != 2 || ok.UnderlayB != netip.MustParsePrefix("192.168.77.2/24") {
		t.Errorf("unexpected defaults: %+v", ok)
	}
	for name, o := range badOptions() {
		o.setDefaults()
		if err := o.validate(); !errors.Is(err, ErrBadOption) {
			t.Errorf("%s: validate = %v, want ErrBadOption", name, err)
		}
	}
}

// badOptions returns options that validation must reject.
func badOptions() map[string]Options {
	return map[string]Options{
		"underlay subnets differ": {UnderlayB: netip.MustParsePrefix("192.168.78.2/24")},
		"underlay equal":          {UnderlayB: DefaultUnderlayA},
		"overlay network address": {OverlayA: netip.MustParsePrefix("10.42.0.0/24")},
		"VNI too big":             {VNI: 1 << 24},
		"wire MTU too big":        {WireMTU: 70000},
		"overlay MTU too big":     {OverlayMTU: 1451},
		"queues":                  {WireQueues: -1},
		"wire name too long":      {WireA: "abcdefghijklmnop"},
		"wire name taken":         {WireB: "lo"},
		"prefix with slash":       {Prefix: "a/b"},
	}
}

func TestSide(t *testing.T) {
	if SideA.String() != "A" || SideB.String() != "B" || SideA.Other() != SideB || SideB.Other() != SideA {
		t.Error("Side names or Other wrong")
	}
}

func TestParseIperf3(t *testing.T) {
	const udpNothing = `{"end":{"streams":[{"udp":{"out_of_order":0}}],
		"sum":{"bytes":548000000,"bits_per_second":2.19e9,"lost_packets":0,"packets":66880},
		"sum_sent":{"bytes":548000000,"bits_per_second":2.19e9},
		"sum_received":{"bytes":0,"bits_per_second":0}}}`
	const udp = `{"end":{"streams":[{"udp":{"out_of_order":3}}],
		"sum":{"bytes":1028096000,"bits_per_second":4.1e9,"lost_packets":14220,"packets":125500},
		"sum_received":{"bytes":15851520,"bits_per_second":6.29e7}}}`
	const udpOld = `{"end":{"streams":[{"udp":{"out_of_order":0}}],
		"sum":{"bytes":1000,"bits_per_second":8000,"lost_packets":1,"packets":4}}}`
	const tcp = `{"end":{"sum_sent":{"retransmits":7},"sum_received":{"bytes":5e9,"bits_per_second":1.2e10}}}`
	for _, tc := range []struct {
		name      string
		json      string
		udp       bool
		bps, byts float64
		lost, rtx int
		ooo       int
	}{
		// Nothing arrived: the sent side, with iperf3's loss count of 0, must not stand in.
		{"udp nothing received", udpNothing, true, 0, 0, 0, 0, 0},
		{"udp", udp, true, 6.29e7, 15851520, 14220, 0, 3},
		{"udp older iperf3", udpOld, true, 6000, 750, 1, 0, 0},
		{"tcp", tcp, false, 1.2e10, 5e9, 0, 7, 0},
	} {
		res, err := parseIperf3([]byte(tc.json), tc.udp)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.BitsPerSecond != tc.bps || res.Bytes != tc.byts || res.LostPackets != tc.lost ||
			res.Retransmits != tc.rtx || res.OutOfOrder != tc.ooo {
			t.Errorf("%s: %+v", tc.name, res)
		}
	}
	if _, err := parseIperf3([]byte("iperf3: error"), false); err == nil {
		t.Error("text that is not JSON parsed")
	}
	if res, _ := parseIperf3([]byte(`{"error":"unable to connect"}`), false); res.err != "unable to connect" {
		t.Errorf("iperf3's error: %q", res.err)
	}
}

// TestVXDPLocalConfig checks that the config of one vxdp with a port into each container
// is one vxdp takes, with the ports where the local configurations of bench/ want them.
func TestVXDPLocalConfig(t *testing.T) {
	tp := &Topology{Prefix: "vxt-1-0", ContainerA: NS{"vxt-1-0-cA"}, ContainerB: NS{"vxt-1-0-cB"},
		WireA: DefaultWireA, WireB: DefaultWireB, UnderlayA: DefaultUnderlayA, UnderlayB: DefaultUnderlayB,
		VNI: DefaultVNI, Port: DefaultPort, OverlayMTU: DefaultOverlayMTU}
	text := tp.VXDPLocalConfig(SideB, "tap: vxp1", "veth: vxv0", "workers: 2\n")
	cfg, err := dataplane.ParseConfig(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if cfg.Underlay != DefaultWireB || cfg.Workers != 2 || len(cfg.Networks) != 1 || len(cfg.Networks[0].Ports) != 2 {
		t.Fatalf("config %+v from\n%s", cfg, text)
	}
	a, b := cfg.Networks[0].Ports[0], cfg.Networks[0].Ports[1]
	if a.TAP != "vxp1" || a.Netns != tp.ContainerA.Path() || a.Ifname != "eth0" || a.MTU != DefaultOverlayMTU {
		t.Errorf("container A's port %+v", a)
	}
	if b.Veth != "vxv0" || b.Netns != tp.ContainerB.Path() || b.Ifname != "eth0" || b.MTU != DefaultOverlayMTU {
		t.Errorf("container B's port %+v", b)
	}
}
