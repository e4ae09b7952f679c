package offload

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodeEncode(t *testing.T) {
	// A TSO header as the kernel writes it on a little-endian host: hdr_len 66,
	// gso_size 1448, csum_start 34, csum_offset 16.
	wire := []byte{0x01, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0}
	h, err := Decode(wire)
	if err != nil {
		t.Fatal(err)
	}
	want := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4 | GSOECN, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	if h != want {
		t.Fatalf("Decode = %+v, want %+v", h, want)
	}
	b := make([]byte, HdrLen)
	h.Encode(b)
	if !bytes.Equal(b, wire) {
		t.Fatalf("Encode = %x, want %x", b, wire)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", make([]byte, 9), ErrShortHeader},
		{"nil", nil, ErrShortHeader},
		{"unknown flag", []byte{0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrBadHeader},
		{"unknown gso type", []byte{0, 2, 0, 0, 0, 0, 0, 0, 0, 0}, ErrBadHeader},
		{"gso type 6", []byte{0, 6, 0, 0, 0, 0, 0, 0, 0, 0}, ErrBadHeader},
		{"ecn without gso", []byte{0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0}, ErrBadHeader},
	}
	for _, c := range cases {
		if _, err := Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: Decode = %v, want %v", c.name, err, c.want)
		}
	}
	for _, ok := range [][]byte{
		{0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0},          // DATA_VALID, as a TAP read may carry it
		{0x01, 5, 42, 0, 0xc8, 5, 34, 0, 6, 0},     // USO
		{0x01, 0x84, 86, 0, 0x94, 5, 54, 0, 16, 0}, // TSO6 with ECN
		{0, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0xff},       // UFO decodes (Segment refuses it); longer b is fine
	} {
		if _, err := Decode(ok); err != nil {
			t.Errorf("Decode(%x) = %v", ok, err)
		}
	}
}
