//go:build linux

package topo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Iperf3 describes one iperf3 run between two namespaces.
type Iperf3 struct {
	// Server and Client are the namespaces the iperf3 server and client run in.
	Server, Client NS
	// Addr is the server's address, which the server binds to and the client connects to.
	Addr string
	// Duration of the test; default 3 s.
	Duration time.Duration
	// Reverse makes the server send and the client receive (iperf3 -R).
	Reverse bool
	// UDP runs a UDP test (iperf3 -u) at Bitrate.
	UDP bool
	// Bitrate is iperf3's -b ("0" for unlimited; default: iperf3's own, 1 Mbit/s for UDP).
	Bitrate string
	// Length is the write size (iperf3 -l) in bytes; 0 keeps iperf3's default.
	Length int
	// Parallel is the number of parallel flows (iperf3 -P); 0 or 1 is a single flow.
	Parallel int
	// Port is the server's port; 0 keeps iperf3's default, 5201.
	Port int
}

// Iperf3Result is what a run measured, from the receiver's side.
type Iperf3Result struct {
	// BitsPerSecond is the received throughput.
	BitsPerSecond float64
	// Bytes is the number of bytes received.
	Bytes float64
	// Retransmits is the sender's TCP retransmissions (TCP only).
	Retransmits int
	// LostPackets and Packets are the UDP datagrams lost and sent (UDP only).
	LostPackets, Packets int
	// OutOfOrder is the number of UDP datagrams the server received out of
	// order, summed over the streams (UDP only).
	OutOfOrder int
	// JSON is iperf3's whole -J output.
	JSON []byte
	// PIDs are the process IDs of the server and of each client started (the client is
	// retried while the server is not yet listening): a whole-machine profile tells the
	// run's own iperf3 from other processes of that name by them.
	PIDs []int

	err string // the error iperf3 reported in its JSON, if any
}

// Run starts the server, runs the client, and returns the result. It retries the client
// while the server is not yet listening.
func (r Iperf3) Run(ctx context.Context) (Iperf3Result, error) {
	if r.Duration == 0 {
		r.Duration = 3 * time.Second
	}
	port := []string{}
	if r.Port != 0 {
		port = []string{"-p", strconv.Itoa(r.Port)}
	}
	ctx, cancel := context.WithTimeout(ctx, r.Duration+30*time.Second)
	defer cancel()
	srv := r.Server.Exec(ctx, "iperf3", append([]string{"-s", "-1", "-B", r.Addr}, port...)...)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return Iperf3Result{}, fmt.Errorf("start iperf3 server in %s: %w", r.Server, err)
	}
	// `ip netns exec` execs iperf3 in place: the process started is iperf3.
	pids := []int{srv.Process.Pid}
	// stopServer ends the server and waits for it, after which srvOut is safe to read:
	// until then the server's output is still being copied into it.
	srvStopped := false
	stopServer := func() {
		if !srvStopped {
			srvStopped = true
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
	}
	defer stopServer()
	args := append([]string{"-c", r.Addr, "-J", "--connect-timeout", "2000",
		"-t", strconv.FormatFloat(r.Duration.Seconds(), 'f', -1, 64)}, port...)
	if r.Reverse {
		args = append(args, "-R")
	}
	if r.UDP {
		args = append(args, "-u")
	}
	if r.Bitrate != "" {
		args = append(args, "-b", r.Bitrate)
	}
	if r.Length > 0 {
		args = append(args, "-l", strconv.Itoa(r.Length))
	}
	if r.Parallel > 1 {
		args = append(args, "-P", strconv.Itoa(r.Parallel))
	}
	var out, errOut string
	var err error
	for try := 0; try < 30; try++ {
		client := r.Client.Exec(ctx, "iperf3", args...)
		out, errOut, err = runSplit(client, r.Client.Name)
		if client.Process != nil {
			pids = append(pids, client.Process.Pid)
		}
		// iperf3 3.12 -J exits 0 even when it could not connect: look at the text.
		if !strings.Contains(out+errOut, "unable to connect") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, jerr := parseIperf3([]byte(out), r.UDP)
	res.PIDs = pids
	if jerr != nil {
		stopServer()
		return res, fmt.Errorf("iperf3 client in %s: %w (stderr: %s; server: %s)", r.Client,
			errors.Join(err, jerr), strings.TrimSpace(errOut), strings.TrimSpace(srvOut.String()))
	}
	if res.err != "" {
		return res, fmt.Errorf("iperf3 client in %s: %s", r.Client, res.err)
	}
	if err != nil {
		return res, fmt.Errorf("iperf3 client in %s: %w", r.Client, err)
	}
	if res.Bytes <= 0 {
		return res, fmt.Errorf("iperf3 from %s to %s moved no data", r.Client, r.Server)
	}
	return res, nil
}

// parseIperf3 reads a client's -J output: the receiver's side of it. The error is of the
// JSON itself; iperf3's own error, if it reported one, is left in res.err.
func parseIperf3(out []byte, udp bool) (res Iperf3Result, err error) {
	res.JSON = out
	var j struct {
		End struct {
			// SumReceived is the server's own count of what it received (iperf3 3.12
			// and later, for UDP too); nil from an older iperf3.
			SumReceived *struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			Sum struct { // UDP
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
				LostPackets   int     `json:"lost_packets"`
				Packets       int     `json:"packets"`
			} `json:"sum"`
			Streams []struct {
				UDP struct {
					OutOfOrder int `json:"out_of_order"`
				} `json:"udp"`
			} `json:"streams"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		return res, err
	}
	res.err = j.Error
	switch {
	case j.End.SumReceived != nil:
		// Also when it is zero: iperf3 counts lost UDP datagrams from gaps in the
		// sequence numbers it received, so with next to nothing received its loss
		// count says nothing, and the sent side must not stand in for the received.
		res.BitsPerSecond = j.End.SumReceived.BitsPerSecond
		res.Bytes = j.End.SumReceived.Bytes
	case udp:
		// Older iperf3 reports only the sent side with the server's loss count.
		received := float64(j.End.Sum.Packets-j.End.Sum.LostPackets) / float64(max(j.End.Sum.Packets, 1))
		res.BitsPerSecond = j.End.Sum.BitsPerSecond * received
		res.Bytes = j.End.Sum.Bytes * received
	}
	if udp {
		res.LostPackets, res.Packets = j.End.Sum.LostPackets, j.End.Sum.Packets
		for _, s := range j.End.Streams {
			res.OutOfOrder += s.UDP.OutOfOrder
		}
	} else {
		res.Retransmits = j.End.SumSent.Retransmits
	}
	return res, nil
}

// runSplit runs cmd and returns its standard output and standard error apart:
// iperf3 -J writes its JSON to stdout but warnings (such as "UDP block size
// exceeds TCP MSS") to stderr, which would corrupt the JSON if mixed in.
func runSplit(cmd *exec.Cmd, where string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if rerr := cmd.Run(); rerr != nil {
		err = fmt.Errorf("run %q in %s: %w: %s", strings.Join(cmd.Args, " "), where, rerr,
			strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}
