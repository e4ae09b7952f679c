package dataplane

import (
	"fmt"
	"strconv"

	"github.com/vxdp/vxdp/dataplane/packet"
)

// Values of the policy fields of the config file.
const (
	policyDrop   = "drop"
	policyAccept = "accept"
)

// validateChecks reads the config fields that choose what the VTEP accepts from the
// underlay and from its ports: vxlan_reserved_bits and inner_vlan. Empty fields keep the
// strict defaults, which are Config's zero values.
func (fc *fileConfig) validateChecks(c *Config) error {
	switch s := fc.VXLANReservedBits; s {
	case "", policyDrop:
		c.VXLANReservedIgnored = 0
	case policyAccept:
		c.VXLANReservedIgnored = packet.VXLANReservedAll
	default:
		// A mask of the bits that must be zero, as the Linux vxlan driver's reserved_bits.
		mask, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return fieldError("vxlan_reserved_bits", "%q is not drop, accept or a 64-bit mask (e.g. 0xf7ffffff000000ff)", s)
		}
		if mask&packet.VXLANHeaderUsed != 0 {
			return fieldError("vxlan_reserved_bits", "%#x covers the I flag or the VNI (%#x), which are never reserved",
				mask, packet.VXLANHeaderUsed)
		}
		c.VXLANReservedIgnored = packet.VXLANReservedAll &^ mask
	}
	switch fc.InnerVLAN {
	case "", policyDrop:
		c.InnerVLAN = false
	case policyAccept:
		c.InnerVLAN = true
	default:
		return fieldError("inner_vlan", "%q is neither drop nor accept", fc.InnerVLAN)
	}
	return nil
}

// ReservedBitsString is the config file's value for c.VXLANReservedIgnored: drop, accept,
// or the mask of the bits that must be zero.
func (c *Config) ReservedBitsString() string {
	switch c.VXLANReservedIgnored {
	case 0:
		return policyDrop
	case packet.VXLANReservedAll:
		return policyAccept
	}
	return fmt.Sprintf("%#x", packet.VXLANReservedAll&^c.VXLANReservedIgnored)
}

// innerPolicy is the packet.Policy of the inner checks the config asks for.
func (c *Config) innerPolicy() packet.Policy {
	if c.InnerVLAN {
		return packet.AllowInnerVLAN
	}
	return 0
}

// parseOuter checks a received frame's outer headers as the config asks. Per packet: no
// allocation, a few branches.
func (c *Config) parseOuter(frame []byte, o *packet.Outer) ([]byte, packet.DropReason) {
	return packet.ParseOuterReserved(frame, c.Port, 0, packet.VXLANReservedAll&^c.VXLANReservedIgnored, o)
}

// checkInner checks a decapsulated inner frame as the config asks.
func (c *Config) checkInner(inner []byte) packet.DropReason {
	return packet.CheckInnerPolicy(inner, c.innerPolicy())
}

// fromPortDrop checks a frame a local port sent, before it is switched: it must not be
// VXLAN (UDP to the VTEP port) of its own, whatever its destination, so that no workload
// tunnels inside the tunnel, and it carries an 802.1Q/802.1ad tag only when inner_vlan
// accepts them. It returns the drop reason and true for a frame to drop.
func (c *Config) fromPortDrop(frame []byte) (Drop, bool) {
	if !c.InnerVLAN && len(frame) >= 14 && isVLAN(frame[12], frame[13]) {
		return DropVLANFromPort, true
	}
	if packet.IsUDPTo(frame, c.Port) {
		return DropVXLANFromPort, true
	}
	return 0, false
}

// isVLAN reports whether the EtherType b0 b1 is an 802.1Q or 802.1ad TPID.
func isVLAN(b0, b1 byte) bool {
	return b0 == 0x81 && b1 == 0x00 || b0 == 0x88 && b1 == 0xa8
}
