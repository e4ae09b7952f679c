//go:build linux

package xsk

import (
	"errors"
	"testing"
)

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Ifindex: 1}.withDefaults()
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	want := Options{Ifindex: 1, NumFrames: 4096, FrameSize: 4096, RingSize: 2048, TxFrames: 2048}
	if o != want {
		t.Errorf("defaults = %+v, want %+v", o, want)
	}
	// TxFrames defaults to half the frames, but never more than the ring holds.
	o, err = Options{Ifindex: 1, NumFrames: 8192, RingSize: 1024}.withDefaults()
	if err != nil || o.TxFrames != 1024 {
		t.Errorf("TxFrames default with a small ring = %d (err %v), want 1024", o.TxFrames, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := Options{Ifindex: 3, Queue: 1, NumFrames: 64, FrameSize: 2048, RingSize: 32, TxFrames: 16}
	if err := ok.validate(4096); err != nil {
		t.Fatalf("valid options rejected: %v", err)
	}
	// The dataplane's shape: more RX frames than the fill ring holds is allowed.
	big := Options{Ifindex: 3, NumFrames: 4096, FrameSize: 4096, RingSize: 2048, TxFrames: 1024}
	if err := big.validate(4096); err != nil {
		t.Fatalf("more RX frames than ring entries rejected: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"ifindex zero", func(o *Options) { o.Ifindex = 0 }},
		{"negative queue", func(o *Options) { o.Queue = -1 }},
		{"queue beyond u32", func(o *Options) { o.Queue = 1 << 33 }},
		{"frame size not pow2", func(o *Options) { o.FrameSize = 3000 }},
		{"frame size too small", func(o *Options) { o.FrameSize = 1024 }},
		{"frame size above page", func(o *Options) { o.FrameSize = 8192 }},
		{"ring size not pow2", func(o *Options) { o.RingSize = 48 }},
		{"ring size negative", func(o *Options) { o.RingSize = -32 }},
		{"ring size huge", func(o *Options) { o.RingSize = 1 << 20 }},
		{"one frame", func(o *Options) { o.NumFrames = 1 }},
		{"too many frames", func(o *Options) { o.NumFrames = 1<<20 + 1 }},
		{"all frames TX", func(o *Options) { o.TxFrames = 64 }},
		{"negative TX", func(o *Options) { o.TxFrames = -1 }},
		{"TX beyond ring", func(o *Options) { o.TxFrames = 33 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			err := o.validate(4096)
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("validate(%+v) = %v, want ErrInvalidOptions", o, err)
			}
		})
	}
}

func TestOpenRejectsInvalidOptions(t *testing.T) {
	// Validation comes before any syscall, so this needs no privilege.
	if _, err := Open(Options{Ifindex: 1, RingSize: 100}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Open with ring size 100 = %v, want ErrInvalidOptions", err)
	}
}
