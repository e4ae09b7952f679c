//go:build linux

package bpf

import (
	"testing"

	"github.com/google/gopacket/layers"
)

// FuzzClassify runs arbitrary frames through the loaded program and checks
// its action and counters against refClassify, an independent Go model of
// the decision. It needs root to load the program.
func FuzzClassify(f *testing.F) {
	cfg := testConfig()
	p := loadProgram(f, &cfg)
	locals, remotes := addrSet(cfg.Locals...), addrSet(cfg.Remotes...)

	dot1q := []layers.EthernetType{layers.EthernetTypeDot1Q}
	for _, s := range []frameSpec{
		{src: remoteV4, dst: localV4, dport: testPort},
		{src: strangerV4, dst: localV4, dport: testPort},
		{src: remoteV4, dst: otherV4, dport: testPort},
		{src: remoteV4, dst: localV4, dport: testPort, tags: dot1q},
		{src: remoteV4, dst: localV4, dport: testPort, flags: layers.IPv4MoreFragments},
		{src: remoteV4, dst: localV4, dport: testPort, fragOff: 3},
		{src: remoteV4, dst: localV4, dport: testPort, noVXLAN: true},
		{src: remoteV4, dst: localV4, dport: testPort, tcp: true},
		{src: remoteV4, dst: localV4, dport: testPort,
			options: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}},
		{src: remoteV6, dst: localV6, dport: testPort},
		{src: strangerV6, dst: localV6, dport: testPort, tags: []layers.EthernetType{layers.EthernetTypeQinQ}},
		{src: remoteV6, dst: localV6, dport: testPort, hopByHop: true},
		{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{43, 60, 51}},
		{src: strangerV6, dst: localV6, dport: testPort, ext6: []uint8{60, 44}, frag6More: true},
		{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{44}, frag6Off: 7},
	} {
		f.Add(buildFrame(f, s))
	}
	f.Add(arpFrame(f))

	f.Fuzz(func(t *testing.T, frame []byte) {
		// BPF_PROG_TEST_RUN wants an Ethernet header and, for a program
		// without frags support, a frame that fits one page.
		if len(frame) < 14 || len(frame) > 1500 {
			return
		}
		checkVerdict(t, p, frame, refClassify(frame, cfg.Port, locals, remotes))
	})
}
