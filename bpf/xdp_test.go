//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// The Go constants mirror the C map sizes and program name; this needs no
// privileges, it reads the embedded ELF.
func TestSpecMatchesConstants(t *testing.T) {
	spec, err := loadXdp()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{
		xdpMapXsks:        MaxQueues,
		xdpMapLocalAddrs:  MaxLocals,
		xdpMapRemoteAddrs: MaxRemotes,
		xdpMapCounters:    uint32(xdpVxdpReasonVXDP_REASONS),
	} {
		if got := spec.Maps[name].MaxEntries; got != want {
			t.Errorf("map %s: max entries %d, Go side assumes %d", name, got, want)
		}
	}
	if got := spec.Programs[xdpProgVxdpRx].Name; got != ProgramName {
		t.Errorf("program name %q, ProgramName is %q", got, ProgramName)
	}
	if got := spec.Maps[xdpMapLocalAddrs].KeySize; got != 16 {
		t.Errorf("address key size %d, want 16", got)
	}
}

func TestVerdicts(t *testing.T) {
	cfg := testConfig()
	p := loadProgram(t, &cfg)
	locals, remotes := addrSet(cfg.Locals...), addrSet(cfg.Remotes...)

	mappedRemote := netip.AddrFrom16(remoteV4.As16()) // ::ffff:192.0.2.2 as an IPv6 source
	routerAlert := []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	dot1q := []layers.EthernetType{layers.EthernetTypeDot1Q}
	qinq := []layers.EthernetType{layers.EthernetTypeQinQ}

	tests := []struct {
		name string
		spec *frameSpec // nil: use frame
		raw  []byte
		want xdpVxdpReason
	}{
		{"v4 allowed remote, no socket", &frameSpec{src: remoteV4, dst: localV4, dport: testPort}, nil, xdpVxdpReasonVXDP_DROP_NO_SOCKET},
		{"v4 unknown remote", &frameSpec{src: strangerV4, dst: localV4, dport: testPort}, nil, xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE},
		{"v4 wrong port", &frameSpec{src: remoteV4, dst: localV4, dport: 4790}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v4 not our address", &frameSpec{src: remoteV4, dst: otherV4, dport: testPort}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v4 unknown remote to other address", &frameSpec{src: strangerV4, dst: otherV4, dport: testPort}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v4 TCP to local VXLAN port", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, tcp: true}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v4 SSH to local", &frameSpec{src: strangerV4, dst: localV4, dport: 22, tcp: true}, nil, xdpVxdpReasonVXDP_PASSED},
		{"ARP", nil, arpFrame(t), xdpVxdpReasonVXDP_PASSED},
		{"v6 allowed remote, no socket", &frameSpec{src: remoteV6, dst: localV6, dport: testPort}, nil, xdpVxdpReasonVXDP_DROP_NO_SOCKET},
		{"v6 unknown remote", &frameSpec{src: strangerV6, dst: localV6, dport: testPort}, nil, xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE},
		{"v6 IPv4-mapped source of an allowed v4 remote", &frameSpec{src: mappedRemote, dst: localV6, dport: testPort}, nil, xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE},
		{"v6 wrong port", &frameSpec{src: remoteV6, dst: localV6, dport: 53}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v6 hop-by-hop header to our port", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, hopByHop: true}, nil, xdpVxdpReasonVXDP_DROP_IPV6EXT},
		{"v6 hop-by-hop from unknown remote", &frameSpec{src: strangerV6, dst: localV6, dport: testPort, ext6: []uint8{0}}, nil, xdpVxdpReasonVXDP_DROP_IPV6EXT},
		{"v6 hop-by-hop to another port goes to the kernel", &frameSpec{src: remoteV6, dst: localV6, dport: 53, ext6: []uint8{0}}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v6 hop-by-hop to another address goes to the kernel", &frameSpec{src: remoteV6, dst: strangerV6, dport: testPort, ext6: []uint8{0}}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v6 routing, destination options, AH", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{43, 60, 51}}, nil, xdpVxdpReasonVXDP_DROP_IPV6EXT},
		{"v6 eight extension headers", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{0, 60, 60, 60, 60, 60, 60, 60}}, nil, xdpVxdpReasonVXDP_DROP_IPV6EXT},
		{"v6 nine extension headers go to the kernel", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{0, 60, 60, 60, 60, 60, 60, 60, 60}}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v6 first fragment to our port", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{44}, frag6More: true}, nil, xdpVxdpReasonVXDP_DROP_FRAGMENT},
		{"v6 first fragment behind destination options", &frameSpec{src: strangerV6, dst: localV6, dport: testPort, ext6: []uint8{60, 44}, frag6More: true}, nil, xdpVxdpReasonVXDP_DROP_FRAGMENT},
		{"v6 non-first fragment goes to the kernel", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{44}, frag6Off: 10}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v6 ESP goes to the kernel", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{50}}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v6 TCP", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, tcp: true}, nil, xdpVxdpReasonVXDP_PASSED},
		{"802.1Q v4 allowed", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, tags: dot1q}, nil, xdpVxdpReasonVXDP_DROP_NO_SOCKET},
		{"802.1Q v4 unknown remote", &frameSpec{src: strangerV4, dst: localV4, dport: testPort, tags: dot1q}, nil, xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE},
		{"802.1ad v6 allowed", &frameSpec{src: remoteV6, dst: localV6, dport: testPort, tags: qinq}, nil, xdpVxdpReasonVXDP_DROP_NO_SOCKET},
		{"two tags go to the kernel", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, tags: append(qinq, layers.EthernetTypeDot1Q)}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v4 options (IHL 6) allowed", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, options: routerAlert}, nil, xdpVxdpReasonVXDP_DROP_NO_SOCKET},
		{"v4 options (IHL 6) unknown remote", &frameSpec{src: strangerV4, dst: localV4, dport: testPort, options: routerAlert}, nil, xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE},
		{"v4 first fragment to our port", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, flags: layers.IPv4MoreFragments}, nil, xdpVxdpReasonVXDP_DROP_FRAGMENT},
		{"v4 first fragment from unknown remote", &frameSpec{src: strangerV4, dst: localV4, dport: testPort, flags: layers.IPv4MoreFragments}, nil, xdpVxdpReasonVXDP_DROP_FRAGMENT},
		{"v4 first fragment to another port", &frameSpec{src: remoteV4, dst: localV4, dport: 53, flags: layers.IPv4MoreFragments}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v4 non-first fragment goes to the kernel", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, fragOff: 185}, nil, xdpVxdpReasonVXDP_PASSED},
		{"v4 DF set is not a fragment", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, flags: layers.IPv4DontFragment}, nil, xdpVxdpReasonVXDP_DROP_NO_SOCKET},
		{"v4 UDP without VXLAN header is still taken", &frameSpec{src: remoteV4, dst: localV4, dport: testPort, noVXLAN: true}, nil, xdpVxdpReasonVXDP_DROP_NO_SOCKET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tt.raw
			if tt.spec != nil {
				frame = buildFrame(t, *tt.spec)
			}
			if ref := refClassify(frame, cfg.Port, locals, remotes); ref != tt.want {
				t.Fatalf("reference model says %d, table says %d: fix one of them", ref, tt.want)
			}
			checkVerdict(t, p, frame, tt.want)
		})
	}

	// The options case must really carry IHL 6, or it proves nothing.
	f := buildFrame(t, frameSpec{src: remoteV4, dst: localV4, dport: testPort, options: routerAlert})
	if ihl := f[14] & 0xf; ihl != 6 {
		t.Errorf("options frame has IHL %d, want 6", ihl)
	}
}

func checkVerdict(t *testing.T, p *Program, frame []byte, want xdpVxdpReason) {
	t.Helper()
	wantAction := uint32(xdpDrop)
	if want == xdpVxdpReasonVXDP_PASSED {
		wantAction = xdpPass
	}
	ret, delta := run(t, p, frame)
	if ret != wantAction {
		t.Errorf("action %d, want %d", ret, wantAction)
	}
	if wantC := reasonCounters(want); delta != wantC {
		t.Errorf("counters moved by %+v, want %+v", delta, wantC)
	}
}

// Truncated headers cannot be VXLAN to us: the kernel gets them.
func TestTruncatedFramesPass(t *testing.T) {
	cfg := testConfig()
	p := loadProgram(t, &cfg)
	full := [][]byte{vxlan(t, remoteV4, localV4), vxlan(t, remoteV6, localV6),
		buildFrame(t, frameSpec{src: remoteV4, dst: localV4, dport: testPort, tags: []layers.EthernetType{layers.EthernetTypeDot1Q}})}
	for _, f := range full {
		// Cut inside the VLAN tag, the IP header or the UDP header
		// (BPF_PROG_TEST_RUN needs at least 14 bytes).
		udpEnd := len(f) - 8 - 14 - 64 // end of the UDP header
		for _, n := range []int{14, 16, 20, 33, udpEnd - 1} {
			t.Run(fmt.Sprintf("len%d_of_%d", n, len(f)), func(t *testing.T) {
				checkVerdict(t, p, f[:n], xdpVxdpReasonVXDP_PASSED)
			})
		}
		// A UDP header with nothing behind it is still taken: the
		// userspace parser drops it.
		t.Run(fmt.Sprintf("udp_only_of_%d", len(f)), func(t *testing.T) {
			checkVerdict(t, p, f[:udpEnd], xdpVxdpReasonVXDP_DROP_NO_SOCKET)
		})
	}
}

// An IPv6 extension chain cut short, or claiming more than the frame holds,
// cannot be tied to our port: the kernel gets it.
func TestIPv6ExtensionsCutPass(t *testing.T) {
	cfg := testConfig()
	p := loadProgram(t, &cfg)
	f := buildFrame(t, frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{0, 51, 44}, frag6More: true})
	const chain = 14 + 40 + 8 + 12 + 8 // Ethernet, IPv6, hop-by-hop, AH, fragment
	for _, n := range []int{14 + 40, 14 + 41, 14 + 48, 14 + 55, 14 + 60, chain - 1, chain, chain + 7} {
		t.Run(fmt.Sprintf("len%d", n), func(t *testing.T) {
			checkVerdict(t, p, f[:n], xdpVxdpReasonVXDP_PASSED)
		})
	}
	checkVerdict(t, p, f[:chain+8], xdpVxdpReasonVXDP_DROP_FRAGMENT)
	long := buildFrame(t, frameSpec{src: remoteV6, dst: localV6, dport: testPort, ext6: []uint8{60}})
	long[14+40+1] = 255 // destination options of 2048 bytes in a frame of about 150
	checkVerdict(t, p, long, xdpVxdpReasonVXDP_PASSED)
}

// Before Configure the port is 0 and everything passes.
func TestUnconfiguredPassesAll(t *testing.T) {
	p := loadProgram(t, nil)
	checkVerdict(t, p, vxlan(t, remoteV4, localV4), xdpVxdpReasonVXDP_PASSED)
	checkVerdict(t, p, vxlan(t, strangerV6, localV6), xdpVxdpReasonVXDP_PASSED)
}

func TestConfigureReplacesSets(t *testing.T) {
	cfg := testConfig()
	p := loadProgram(t, &cfg)
	checkVerdict(t, p, vxlan(t, remoteV4, localV4), xdpVxdpReasonVXDP_DROP_NO_SOCKET)

	newLocal := netip.MustParseAddr("192.0.2.11")
	newRemote := netip.MustParseAddr("192.0.2.12")
	cfg2 := Config{
		Port:    4790,
		Locals:  []netip.Addr{newLocal, localV6, newLocal}, // duplicates are harmless
		Remotes: []netip.Addr{newRemote, remoteV6},
	}
	if err := p.Configure(cfg2); err != nil {
		t.Fatal(err)
	}
	at := func(src, dst netip.Addr, port uint16) []byte {
		return buildFrame(t, frameSpec{src: src, dst: dst, dport: port})
	}
	// The old remote is now unknown, the new one is allowed.
	checkVerdict(t, p, at(remoteV4, newLocal, 4790), xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE)
	checkVerdict(t, p, at(newRemote, newLocal, 4790), xdpVxdpReasonVXDP_DROP_NO_SOCKET)
	// The old local and the old port are no longer ours.
	checkVerdict(t, p, at(newRemote, localV4, 4790), xdpVxdpReasonVXDP_PASSED)
	checkVerdict(t, p, at(newRemote, newLocal, testPort), xdpVxdpReasonVXDP_PASSED)
	// Kept entries stay.
	checkVerdict(t, p, at(remoteV6, localV6, 4790), xdpVxdpReasonVXDP_DROP_NO_SOCKET)

	if got, want := mapAddrs(t, p.objs.LocalAddrs), []netip.Addr{newLocal, localV6}; !sameAddrs(got, want) {
		t.Errorf("local_addrs = %v, want %v", got, want)
	}
	if got, want := mapAddrs(t, p.objs.RemoteAddrs), []netip.Addr{newRemote, remoteV6}; !sameAddrs(got, want) {
		t.Errorf("remote_addrs = %v, want %v", got, want)
	}

	// Emptying the allowlist drops every remote.
	if err := p.Configure(Config{Port: 4790, Locals: cfg2.Locals}); err != nil {
		t.Fatal(err)
	}
	checkVerdict(t, p, at(newRemote, newLocal, 4790), xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE)
	if got := mapAddrs(t, p.objs.RemoteAddrs); len(got) != 0 {
		t.Errorf("remote_addrs = %v after emptying", got)
	}
}

func mapAddrs(t *testing.T, m *ebpf.Map) []netip.Addr {
	t.Helper()
	var (
		k   xdpVxdpAddr
		v   uint8
		out []netip.Addr
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, netip.AddrFrom16(k.B).Unmap())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}

func TestConfigureRejects(t *testing.T) {
	p := loadProgram(t, nil)
	many := make([]netip.Addr, MaxLocals+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	for name, c := range map[string]Config{
		"port 0":          {Port: 0, Locals: []netip.Addr{localV4}},
		"invalid local":   {Port: testPort, Locals: []netip.Addr{{}}},
		"invalid remote":  {Port: testPort, Locals: []netip.Addr{localV4}, Remotes: []netip.Addr{{}}},
		"too many locals": {Port: testPort, Locals: many},
	} {
		if err := p.Configure(c); err == nil {
			t.Errorf("%s: Configure accepted it", name)
		}
	}
	// Nothing was written: the program still passes everything.
	checkVerdict(t, p, vxlan(t, remoteV4, localV4), xdpVxdpReasonVXDP_PASSED)
}

func TestSocketRegistrationErrors(t *testing.T) {
	p := loadProgram(t, nil)
	for _, q := range []int{-1, MaxQueues, MaxQueues + 100} {
		if err := p.RegisterSocket(q, 3); !errors.Is(err, ErrQueueRange) {
			t.Errorf("RegisterSocket(%d): %v, want ErrQueueRange", q, err)
		}
		if err := p.UnregisterSocket(q); !errors.Is(err, ErrQueueRange) {
			t.Errorf("UnregisterSocket(%d): %v, want ErrQueueRange", q, err)
		}
	}
	// The kernel accepts only bound AF_XDP sockets in an XSKMAP.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := p.RegisterSocket(0, int(f.Fd())); err == nil {
		t.Error("RegisterSocket accepted /dev/null")
	}
	if err := p.UnregisterSocket(MaxQueues - 1); err != nil {
		t.Errorf("UnregisterSocket of an empty slot: %v", err)
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	requireRoot(t)
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Configure(testConfig()); !errors.Is(err, ErrClosed) {
		t.Errorf("Configure after Close: %v", err)
	}
	if _, err := p.Counters(); !errors.Is(err, ErrClosed) {
		t.Errorf("Counters after Close: %v", err)
	}
	if err := p.Attach(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v", err)
	}
	if err := p.RegisterSocket(0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("RegisterSocket after Close: %v", err)
	}
}

// Counters sums the per-CPU slots: run the program pinned to two different
// CPUs and check each slot and the sum.
func TestCountersSumAcrossCPUs(t *testing.T) {
	p := loadProgram(t, nil)
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 2; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		t.Skipf("needs two usable CPUs, have %v", cpus)
	}
	frame := arpFrame(t)
	repeats := []uint32{100, 250}
	for i, cpu := range cpus {
		if err := runPinned(cpu, func() error {
			_, err := p.objs.VxdpRx.Run(&ebpf.RunOptions{Data: frame, Repeat: repeats[i]})
			return err
		}); err != nil {
			t.Fatalf("run on CPU %d: %v", cpu, err)
		}
	}
	var perCPU []uint64
	if err := p.objs.Counters.Lookup(uint32(xdpVxdpReasonVXDP_PASSED), &perCPU); err != nil {
		t.Fatal(err)
	}
	for i, cpu := range cpus {
		if perCPU[cpu] != uint64(repeats[i]) {
			t.Errorf("CPU %d slot = %d, want %d (all slots %v)", cpu, perCPU[cpu], repeats[i], perCPU)
		}
	}
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counters{Passed: uint64(repeats[0] + repeats[1])}); c != want {
		t.Errorf("Counters = %+v, want %+v", c, want)
	}
}

// runPinned runs f on a thread bound to cpu. The thread is discarded
// afterwards (the goroutine exits still locked) so no other goroutine
// inherits the affinity.
func runPinned(cpu int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- fmt.Errorf("set affinity: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// BenchmarkClassify reports the kernel-measured cost of one run of the
// program (BPF_PROG_TEST_RUN, JIT on), per path, as xdp-ns/op.
func BenchmarkClassify(b *testing.B) {
	cfg := testConfig()
	p := loadProgram(b, &cfg)
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"arp_pass", arpFrame(b)},
		{"v4_vxlan_no_socket", vxlan(b, remoteV4, localV4)},
		{"v4_vxlan_unknown_remote", vxlan(b, strangerV4, localV4)},
		{"v6_vxlan_no_socket", vxlan(b, remoteV6, localV6)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, per, err := p.objs.VxdpRx.Benchmark(bc.frame, max(b.N, 1000), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "xdp-ns/op")
		})
	}
}
