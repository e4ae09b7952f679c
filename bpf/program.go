//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// Attach modes reported by Mode.
const (
	// ModeNative is XDP in the driver's receive path (XDP_FLAGS_DRV_MODE).
	ModeNative = "native"
	// ModeGeneric is XDP after skb allocation (XDP_FLAGS_SKB_MODE), for
	// drivers without native support; slower, same verdicts.
	ModeGeneric = "generic"
)

// present is the value stored in the address sets; only the key matters.
const present uint8 = 1

// Program is the loaded XDP classifier with its maps. Its methods are safe for
// concurrent use.
type Program struct {
	// The lock guards objs too and serialises Configure, so two reloads never
	// interleave their set updates.
	attachment
	objs xdpObjects
}

// Load loads the program and its maps into the kernel without attaching it.
// Until Configure is called the program passes every packet.
func Load() (*Program, error) {
	p := &Program{}
	if err := loadXdpObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("load xdp objects: %w", err)
	}
	return p, nil
}

// Configure writes the VXLAN port and replaces the local and remote address
// sets. New addresses are added before gone ones are deleted, so an address
// present in both the old and the new configuration is never missing.
func (p *Program) Configure(c Config) error {
	if c.Port == 0 {
		return errors.New("configure xdp: port is 0")
	}
	locals, err := addrKeys(c.Locals, MaxLocals)
	if err != nil {
		return fmt.Errorf("configure xdp: locals: %w", err)
	}
	remotes, err := addrKeys(c.Remotes, MaxRemotes)
	if err != nil {
		return fmt.Errorf("configure xdp: remotes: %w", err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("configure xdp: %w", ErrClosed)
	}
	if err := putKeys(p.objs.LocalAddrs, locals); err != nil {
		return fmt.Errorf("configure xdp: add locals: %w", err)
	}
	if err := putKeys(p.objs.RemoteAddrs, remotes); err != nil {
		return fmt.Errorf("configure xdp: add remotes: %w", err)
	}
	if err := p.objs.Config.Put(uint32(0), xdpVxdpConfig{Port: c.Port}); err != nil {
		return fmt.Errorf("configure xdp: write port: %w", err)
	}
	if err := deleteOthers(p.objs.LocalAddrs, locals); err != nil {
		return fmt.Errorf("configure xdp: delete locals: %w", err)
	}
	if err := deleteOthers(p.objs.RemoteAddrs, remotes); err != nil {
		return fmt.Errorf("configure xdp: delete remotes: %w", err)
	}
	return nil
}

// addrKeys turns addresses into map keys (IPv4 as IPv4-mapped IPv6),
// rejecting invalid ones and more than limit distinct ones.
func addrKeys(addrs []netip.Addr, limit int) (map[xdpVxdpAddr]struct{}, error) {
	keys := make(map[xdpVxdpAddr]struct{}, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, errors.New("invalid address")
		}
		keys[addrKey(a)] = struct{}{}
	}
	if len(keys) > limit {
		return nil, fmt.Errorf("%d addresses, at most %d", len(keys), limit)
	}
	return keys, nil
}

// addrKey is the map key of a: its 16-byte form, IPv4 as ::ffff:a.b.c.d. An
// IPv6 zone plays no part.
func addrKey(a netip.Addr) xdpVxdpAddr {
	return xdpVxdpAddr{B: a.As16()}
}

func putKeys(m *ebpf.Map, keys map[xdpVxdpAddr]struct{}) error {
	for k := range keys {
		if err := m.Put(k, present); err != nil {
			return fmt.Errorf("put %v: %w", netip.AddrFrom16(k.B).Unmap(), err)
		}
	}
	return nil
}

// deleteOthers deletes every key of m that is not in keep. Keys are collected
// first: deleting while iterating a hash map can restart the iteration.
func deleteOthers(m *ebpf.Map, keep map[xdpVxdpAddr]struct{}) error {
	var (
		k     xdpVxdpAddr
		v     uint8
		stale []xdpVxdpAddr
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := keep[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate: %w", err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete %v: %w", netip.AddrFrom16(k.B).Unmap(), err)
		}
	}
	return nil
}

// Attach attaches the program to the interface through a bpf_link, in native
// mode if the driver supports it and in generic mode otherwise. The link is
// not pinned: it is released, and the program detached, when the process
// exits or crashes.
func (p *Program) Attach(ifindex int) error {
	return p.attach(p.objs.VxdpRx, ifindex, "xdp")
}

// RegisterSocket makes fd, a bound AF_XDP socket, the destination of VXLAN
// received on NIC queue queue. It replaces any socket registered before.
func (p *Program) RegisterSocket(queue int, fd int) error {
	return p.registerSocket(p.objs.Xsks, queue, MaxQueues, fd, "socket")
}

// UnregisterSocket removes the socket of queue queue; VXLAN on that queue is
// then dropped and counted in DropNoSocket. Removing an empty slot is not an
// error.
func (p *Program) UnregisterSocket(queue int) error {
	if queue < 0 || queue >= MaxQueues {
		return fmt.Errorf("unregister socket for queue %d: %w (max %d)", queue, ErrQueueRange, MaxQueues-1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("unregister socket for queue %d: %w", queue, ErrClosed)
	}
	if err := p.objs.Xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister socket for queue %d: %w", queue, err)
	}
	return nil
}

// Counters reads the verdict counters, summing the per-CPU slots. Meant for
// scrape time: it makes one syscall per counter and allocates.
func (p *Program) Counters() (Counters, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Counters{}, fmt.Errorf("read xdp counters: %w", ErrClosed)
	}
	var c Counters
	fields := [...]struct {
		reason xdpVxdpReason
		dst    *uint64
	}{
		{xdpVxdpReasonVXDP_PASSED, &c.Passed},
		{xdpVxdpReasonVXDP_REDIRECTED, &c.Redirected},
		{xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE, &c.DropUnknownRemote},
		{xdpVxdpReasonVXDP_DROP_NO_SOCKET, &c.DropNoSocket},
		{xdpVxdpReasonVXDP_DROP_FRAGMENT, &c.DropFragment},
		{xdpVxdpReasonVXDP_REDIRECT_FAILED, &c.RedirectFailed},
		{xdpVxdpReasonVXDP_DROP_IPV6EXT, &c.DropIPv6Ext},
	}
	for _, f := range fields {
		var err error
		if *f.dst, err = sumPerCPU(p.objs.Counters, uint32(f.reason)); err != nil {
			return Counters{}, fmt.Errorf("read xdp counters: %w", err)
		}
	}
	return c, nil
}

// Close detaches the program (if attached) and releases its maps. It is safe
// to call more than once; later calls return nil.
func (p *Program) Close() error {
	return p.close(&p.objs, "xdp")
}
