//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/topo"
)

// stream describes a sequence-stamped UDP stream from container A to container B, the
// ordering tests' probe: the pipeline, fault and reload tests send one and check that what
// arrives arrives in the order sent.
type stream struct {
	n    int              // datagrams, stamped 0..n-1 in their first 8 bytes
	rate int              // datagrams per second; 0 sends as fast as the socket takes them
	mark func(i int) bool // datagrams that carry dataplane.StallMarker after the stamp
	idle time.Duration    // the receiver gives up after this long without a datagram
	// sent, if not nil, is called (on the sending goroutine) once the last datagram is
	// out, before waiting for the receiver; the receiver waits for idle only from then on.
	sent func()
	tp   *topo.Topology
}

// run sends the stream and returns how many datagrams were sent and how many arrived; it
// fails the test if any arrived out of order or twice.
func (s stream) run(t *testing.T) (got, sent int) {
	t.Helper()
	got, sent, err := s.start(t)()
	if err != nil {
		t.Fatalf("after %d datagrams: %v", got, err)
	}
	return got, sent
}

// start opens the receiver and starts sending the stream in the background; wait returns,
// once the sender is done and the receiver has given up, how many datagrams arrived and
// were sent, and the first datagram that arrived out of order or twice (or a receive error).
func (s stream) start(t *testing.T) (wait func() (got, sent int, err error)) {
	t.Helper()
	var rx *net.UDPConn
	err := s.tp.ContainerB.Do(func() (err error) {
		rx, err = net.ListenUDP("udp", &net.UDPAddr{IP: s.tp.OverlayB.Addr().AsSlice()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rx.SetReadBuffer(16 << 20)
	var tx *net.UDPConn
	err = s.tp.ContainerA.Do(func() (err error) {
		tx, err = net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
		return err
	})
	if err != nil {
		rx.Close()
		t.Fatal(err)
	}
	tx.SetWriteBuffer(16 << 20)

	type result struct {
		got   int
		order error
	}
	received := make(chan result, 1)
	var sending atomic.Bool
	sending.Store(true)
	go func() {
		var r result
		buf := make([]byte, 2048)
		last := int64(-1)
		for {
			rx.SetReadDeadline(time.Now().Add(s.idle))
			m, err := rx.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) && sending.Load() {
					continue // a stall may hold everything back until the sender is done
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					r.order = err
				}
				received <- r
				return
			}
			if m < 8 {
				continue
			}
			seq := int64(binary.BigEndian.Uint64(buf[:8]))
			if seq <= last && r.order == nil {
				r.order = fmt.Errorf("datagram %d arrived after %d", seq, last)
			}
			last = seq
			r.got++
		}
	}()
	sentN := make(chan int, 1)
	go func() {
		defer tx.Close()
		plain, marked := make([]byte, 256), make([]byte, 256)
		copy(marked[8:], dataplane.StallMarker)
		sent, start := 0, time.Now()
		for i := 0; i < s.n; i++ {
			p := plain
			if s.mark != nil && s.mark(i) {
				p = marked
			}
			binary.BigEndian.PutUint64(p, uint64(i))
			if _, err := tx.Write(p); err == nil { // ENOBUFS: a drop on the sender, not vxdp's
				sent++
			}
			if s.rate > 0 {
				if ahead := time.Duration(i+1)*time.Second/time.Duration(s.rate) - time.Since(start); ahead > time.Millisecond {
					time.Sleep(ahead)
				}
			}
		}
		if s.sent != nil {
			s.sent()
		}
		sending.Store(false)
		sentN <- sent
	}()
	return func() (got, sent int, err error) {
		sent = <-sentN
		r := <-received
		rx.Close()
		return r.got, sent, r.order
	}
}
