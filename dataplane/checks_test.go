package dataplane

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxdp/vxdp/dataplane/packet"
)

func TestParseConfigChecks(t *testing.T) {
	const gbp = 0x80ffff00_00000000 // GBP's G flag and policy fields, as a mask
	cases := []struct {
		name, extra string
		ignored     uint64
		vlan        bool
		str         string // ReservedBitsString
	}{
		{"defaults", "", 0, false, "drop"},
		{"drop", "vxlan_reserved_bits: drop\ninner_vlan: drop\n", 0, false, "drop"},
		{"accept", "vxlan_reserved_bits: accept\ninner_vlan: accept\n", packet.VXLANReservedAll, true, "accept"},
		{"kernel default mask", "vxlan_reserved_bits: 0xf7ffffff000000ff\n", 0, false, "drop"},
		{"mask without GBP's bits", "vxlan_reserved_bits: \"0x770000ff000000ff\"\n", gbp, false, "0x770000ff000000ff"},
		{"mask zero", "vxlan_reserved_bits: 0\n", packet.VXLANReservedAll, false, "accept"},
		{"decimal mask", "vxlan_reserved_bits: 255\n", packet.VXLANReservedAll &^ 0xff, false, "0xff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig(strings.NewReader(minimalConfig + c.extra))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.VXLANReservedIgnored != c.ignored || cfg.InnerVLAN != c.vlan {
				t.Errorf("ignored %#x inner_vlan %v, want %#x %v", cfg.VXLANReservedIgnored, cfg.InnerVLAN, c.ignored, c.vlan)
			}
			if s := cfg.ReservedBitsString(); s != c.str {
				t.Errorf("ReservedBitsString %q, want %q", s, c.str)
			}
			// The string form reads back as the same config.
			again, err := ParseConfig(strings.NewReader(minimalConfig + "vxlan_reserved_bits: \"" + cfg.ReservedBitsString() + "\"\n"))
			if err != nil || again.VXLANReservedIgnored != cfg.VXLANReservedIgnored {
				t.Errorf("%q reads back as %#x (%v), want %#x", cfg.ReservedBitsString(), again.VXLANReservedIgnored, err, cfg.VXLANReservedIgnored)
			}
		})
	}
	for name, c := range map[string]struct{ extra, want string }{
		"reserved word":   {"vxlan_reserved_bits: strict\n", `vxlan_reserved_bits: "strict" is not drop, accept or a 64-bit mask`},
		"mask too big":    {"vxlan_reserved_bits: 0x1ffffffffffffffff\n", "vxlan_reserved_bits:"},
		"mask with I":     {"vxlan_reserved_bits: 0x0800000000000000\n", "vxlan_reserved_bits: 0x800000000000000 covers the I flag or the VNI"},
		"mask with VNI":   {"vxlan_reserved_bits: 0x100\n", "covers the I flag or the VNI"},
		"mask negative":   {"vxlan_reserved_bits: -1\n", "vxlan_reserved_bits:"},
		"inner_vlan word": {"inner_vlan: yes\n", `inner_vlan: "yes" is neither drop nor accept`},
		"inner_vlan list": {"inner_vlan: [drop]\n", "inner_vlan: is a list, not a string"},
	} {
		_, err := ParseConfig(strings.NewReader(minimalConfig + c.extra))
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want a config error containing %q", name, err, c.want)
		}
	}
}

// The zero Config is the strict one: a Config built in code, not read from a file, drops
// reserved bits and tagged inner frames.
func TestConfigZeroIsStrict(t *testing.T) {
	var c Config
	c.Port = 4789
	f := vxlanFrame(t, 42, innerFrame(t, nil, 53, 10))
	f[len(f)-len(innerFrame(t, nil, 53, 10))-1] = 1 // the VXLAN header's last, reserved, byte
	var o packet.Outer
	if _, r := c.parseOuter(f, &o); r != packet.DropVXLANReserved {
		t.Errorf("reserved bit: drop %v, want %v", r, packet.DropVXLANReserved)
	}
	tagged := innerFrame(t, []uint16{7}, 53, 10)
	if r := c.checkInner(tagged); r != packet.DropInnerVLAN {
		t.Errorf("tagged inner: drop %v, want %v", r, packet.DropInnerVLAN)
	}
	c.InnerVLAN = true
	if r := c.checkInner(tagged); r != packet.DropNone {
		t.Errorf("tagged inner, inner_vlan accept: drop %v", r)
	}
	c.VXLANReservedIgnored = 0xff
	if _, r := c.parseOuter(f, &o); r != packet.DropNone {
		t.Errorf("reserved bit ignored: drop %v", r)
	}
}

func TestFromPortDrop(t *testing.T) {
	strict := &Config{Port: 4789}
	vlan := &Config{Port: 4789, InnerVLAN: true}
	other := &Config{Port: 8472}
	cases := []struct {
		name  string
		cfg   *Config
		frame []byte
		drop  bool
		want  Drop
	}{
		{"udp to 53", strict, innerFrame(t, nil, 53, 20), false, 0},
		{"vxlan from a container", strict, innerFrame(t, nil, 4789, 20), true, DropVXLANFromPort},
		{"vxlan to another port than ours", other, innerFrame(t, nil, 4789, 20), false, 0},
		{"our port", other, innerFrame(t, nil, 8472, 20), true, DropVXLANFromPort},
		{"tagged", strict, innerFrame(t, []uint16{5}, 53, 20), true, DropVLANFromPort},
		{"tagged, accepted", vlan, innerFrame(t, []uint16{5}, 53, 20), false, 0},
		{"tagged vxlan, tags accepted", vlan, innerFrame(t, []uint16{5, 6}, 4789, 20), true, DropVXLANFromPort},
	}
	for _, c := range cases {
		d, drop := c.cfg.fromPortDrop(c.frame)
		if drop != c.drop || d != c.want {
			t.Errorf("%s: fromPortDrop = %v, %v; want %v, %v", c.name, d, drop, c.want, c.drop)
		}
	}
	f := innerFrame(t, nil, 4789, 20)
	if n := testing.AllocsPerRun(100, func() { strict.fromPortDrop(f) }); n != 0 {
		t.Errorf("fromPortDrop: %v allocs per run", n)
	}
}

// Addresses and MACs of the dataplane's test frames: documentation ranges, locally
// administered MACs.
var (
	testRemote   = net.IPv4(192, 0, 2, 1).To4()
	testLocal    = net.IPv4(192, 0, 2, 2).To4()
	testInnerSrc = net.HardwareAddr{0x02, 0, 0, 0, 0x0b, 0x01}
	testInnerDst = net.HardwareAddr{0x02, 0, 0, 0, 0x0b, 0x02}
)

// innerFrame builds an inner Ethernet frame with the given 802.1Q VLAN IDs (outermost
// first) carrying UDP to dport with payload bytes of data.
func innerFrame(t testing.TB, vlans []uint16, dport uint16, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: testInnerSrc, DstMAC: testInnerDst, EthernetType: layers.EthernetTypeIPv4}
	ls := []gopacket.SerializableLayer{eth}
	for i, id := range vlans {
		if i == 0 {
			eth.EthernetType = layers.EthernetTypeDot1Q
		}
		next := layers.EthernetTypeIPv4
		if i+1 < len(vlans) {
			next = layers.EthernetTypeDot1Q
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: id, Type: next})
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(198, 51, 100, 1).To4(), DstIP: net.IPv4(198, 51, 100, 2).To4()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls = append(ls, ip, udp, gopacket.Payload(make([]byte, payload)))
	return serialize(t, ls...)
}

// vxlanFrame encapsulates inner in VXLAN from testRemote to testLocal, port 4789, with a
// UDP checksum of 0 as Linux sends it.
func vxlanFrame(t testing.TB, vni uint32, inner []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: testRemote, DstIP: testLocal}
	udp := &layers.UDP{SrcPort: 50000, DstPort: 4789}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	f := serialize(t,
		&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0x0a, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0x0a, 2},
			EthernetType: layers.EthernetTypeIPv4},
		ip, udp, &layers.VXLAN{ValidIDFlag: true, VNI: vni}, gopacket.Payload(inner))
	f[14+20+6], f[14+20+7] = 0, 0
	return f
}

// serialize builds a frame with lengths and IP checksums fixed; a UDP checksum is
// computed where SetNetworkLayerForChecksum asked for one, else left 0.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}
