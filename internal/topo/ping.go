//go:build linux

package topo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// pingInterval is the time between echo requests while no reply came: ARP
// and FDB learning on a fresh overlay can eat the first requests.
const pingInterval = 100 * time.Millisecond

// pingWaitDefault bounds Ping when the context carries no deadline.
const pingWaitDefault = 5 * time.Second

// pingPayload is the echo payload size, in bytes: ping(8)'s default.
const pingPayload = 56

// ICMPv4 message types (RFC 792).
const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
)

// pingSeq gives each Ping call its own echo identifier, since a raw ICMP
// socket sees every ICMP packet that reaches the namespace.
var pingSeq atomic.Uint32

// Ping sends ICMP echo requests to the IPv4 address dst from inside the
// namespace, one every 100 ms, until a reply comes back, and returns that
// reply's round-trip time. It gives up when ctx is done, or after 5 s if ctx
// has no deadline. It needs no ping binary, only CAP_NET_RAW.
func (n NS) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	if !dst.Is4() {
		return 0, fmt.Errorf("ping %s: %w: only IPv4 is supported", dst, ErrBadOption)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pingWaitDefault)
		defer cancel()
	}
	var conn net.PacketConn
	err := n.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return fmt.Errorf("open raw icmp socket: %w", err)
		}
		f := os.NewFile(uintptr(fd), "icmp")
		defer f.Close() // FilePacketConn holds its own duplicate
		conn, err = net.FilePacketConn(f)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ping %s from %s: %w", dst, n, err)
	}
	defer conn.Close()

	id := uint16(os.Getpid()) ^ uint16(pingSeq.Add(1)*0x9e37)
	to := &net.IPAddr{IP: dst.AsSlice()}
	req := make([]byte, 8+pingPayload)
	buf := make([]byte, 1500)
	var sent []time.Time // indexed by sequence number
	deadline, _ := ctx.Deadline()
	for {
		seq := uint16(len(sent))
		buildEchoRequest(req, id, seq)
		if _, err := conn.WriteTo(req, to); err != nil {
			return 0, fmt.Errorf("ping %s from %s: send: %w", dst, n, err)
		}
		sent = append(sent, time.Now())
		next := time.Now().Add(pingInterval)
		if next.After(deadline) {
			next = deadline
		}
		if err := conn.SetReadDeadline(next); err != nil {
			return 0, fmt.Errorf("ping %s from %s: %w", dst, n, err)
		}
		for {
			nr, from, err := conn.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return 0, fmt.Errorf("ping %s from %s: receive: %w", dst, n, err)
			}
			ip, ok := from.(*net.IPAddr)
			if !ok || !ip.IP.Equal(to.IP) {
				continue
			}
			rid, rseq, ok := parseEchoReply(buf[:nr])
			if ok && rid == id && int(rseq) < len(sent) {
				return time.Since(sent[rseq]), nil
			}
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("ping %s from %s: no reply to %d requests: %w", dst, n, len(sent), ctx.Err())
		}
	}
}

// buildEchoRequest fills b (8 bytes of header plus payload) with an ICMP
// echo request.
func buildEchoRequest(b []byte, id, seq uint16) {
	b[0], b[1] = icmpEchoRequest, 0
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	binary.BigEndian.PutUint16(b[2:], inetChecksum(b))
}

// parseEchoReply reads an ICMP message, as net.IPConn returns it from a
// raw socket with the IPv4 header stripped, and reports the identifier and
// sequence number of an intact echo reply.
func parseEchoReply(icmp []byte) (id, seq uint16, ok bool) {
	if len(icmp) < 8 || icmp[0] != icmpEchoReply || icmp[1] != 0 || inetChecksum(icmp) != 0 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(icmp[4:]), binary.BigEndian.Uint16(icmp[6:]), true
}

// inetChecksum returns the Internet checksum (RFC 1071) of b; over a
// message that carries its checksum, it is 0 when the message is intact.
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
