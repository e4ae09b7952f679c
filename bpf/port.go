//go:build linux

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// MaxPortQueues is the number of XSKMAP slots of a PortProgram, mirrored from port.c
// (VXDP_PORT_MAX_QUEUES): the highest receive queue of a veth port's host end that can
// get a socket is MaxPortQueues-1.
const MaxPortQueues = 64

// PortProgramName is the kernel name of the veth port program.
const PortProgramName = "vxdp_port"

// PortProgram is the XDP program of one veth port's host end (port.c): every frame the
// container sends arrives there and is redirected to the AF_XDP socket of its receive
// queue; on a queue without a socket it is dropped and counted. Each veth port has a
// PortProgram of its own, so its counters are the port's. Its methods are safe for
// concurrent use.
type PortProgram struct {
	attachment // its lock guards objs too
	objs       portObjects
}

// PortCounters are a PortProgram's counters, summed over all CPUs. Every frame the
// program sees is counted exactly once.
type PortCounters struct {
	// Redirected counts frames redirected to an AF_XDP socket. A frame the kernel then
	// fails to queue (RX ring full) is still counted here; the socket's XDP_STATISTICS
	// count those.
	Redirected uint64
	// DropNoSocket counts frames that arrived on a queue with no registered socket.
	DropNoSocket uint64
}

// LoadPort loads a veth port program and its maps into the kernel without attaching it.
func LoadPort() (*PortProgram, error) {
	p := &PortProgram{}
	if err := loadPortObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("load port xdp objects: %w", err)
	}
	return p, nil
}

// Attach attaches the program to the interface (the host end of a veth) through an
// unpinned bpf_link, natively if the driver can (veth can) and in generic mode
// otherwise; the program is detached when the process exits or crashes.
func (p *PortProgram) Attach(ifindex int) error {
	return p.attach(p.objs.VxdpPort, ifindex, "port xdp")
}

// RegisterSocket makes fd, a bound AF_XDP socket, the destination of the frames received
// on queue queue of the host end. It replaces any socket registered before.
func (p *PortProgram) RegisterSocket(queue int, fd int) error {
	return p.registerSocket(p.objs.PortXsks, queue, MaxPortQueues, fd, "port socket")
}

// Counters reads the counters, summing the per-CPU slots. Meant for scrape time: it
// makes one syscall per counter and allocates.
func (p *PortProgram) Counters() (PortCounters, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return PortCounters{}, fmt.Errorf("read port xdp counters: %w", ErrClosed)
	}
	var c PortCounters
	var err error
	if c.Redirected, err = sumPerCPU(p.objs.PortCounters, uint32(portVxdpPortReasonVXDP_PORT_REDIRECTED)); err != nil {
		return PortCounters{}, fmt.Errorf("read port xdp counters: %w", err)
	}
	if c.DropNoSocket, err = sumPerCPU(p.objs.PortCounters, uint32(portVxdpPortReasonVXDP_PORT_NO_SOCKET)); err != nil {
		return PortCounters{}, fmt.Errorf("read port xdp counters: %w", err)
	}
	return c, nil
}

// Close detaches the program (if attached) and releases its maps. It is safe to call
// more than once; later calls return nil.
func (p *PortProgram) Close() error {
	return p.close(&p.objs, "port xdp")
}

// sumPerCPU reads entry key of a per-CPU array of counters and sums its slots.
func sumPerCPU(m *ebpf.Map, key uint32) (uint64, error) {
	var perCPU []uint64
	if err := m.Lookup(key, &perCPU); err != nil {
		return 0, fmt.Errorf("counter %d: %w", key, err)
	}
	var sum uint64
	for _, n := range perCPU {
		sum += n
	}
	return sum, nil
}
