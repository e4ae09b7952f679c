//go:build linux

package uring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// newRing sets up a ring of entries for t, or skips t where the kernel refuses io_uring
// (the sysctl kernel.io_uring_disabled, a seccomp filter, no io_uring at all).
func newRing(t *testing.T, opts Options) *Ring {
	t.Helper()
	r, err := New(opts)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// pipe returns a pipe whose buffer holds size bytes, closed with t.
func pipe(t *testing.T, size int) (rd, wr int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

// drain reads everything the pipe holds.
func drain(t *testing.T, rd int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(rd, buf)
		if err == unix.EAGAIN {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, buf[:n]...)
	}
}

// Batches of writes and gathering writes to a pipe, each larger than the ring (so
// submitted in parts), over enough batches for the ring's indices to wrap many times:
// every write lands whole, in the order queued.
func TestWritePipeBatches(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	if r.sqEntries != 8 {
		t.Fatalf("%d entries, want 8", r.sqEntries)
	}
	rd, wr := pipe(t, 1<<20)
	const batches, perBatch = 100, 21
	for b := range batches {
		var want bytes.Buffer
		var lens []int
		r.Reset()
		for i := range perBatch {
			rec := []byte(fmt.Sprintf("batch %03d write %02d;", b, i))
			if i%3 == 0 { // a gathering write: the record in three pieces
				r.Writev(wr, [][]byte{rec[:4], rec[4:10], rec[10:]}, unix.RWF_NOWAIT)
			} else {
				r.Write(wr, rec, unix.RWF_NOWAIT)
			}
			want.Write(rec)
			lens = append(lens, len(rec))
		}
		if r.Len() != perBatch {
			t.Fatalf("Len %d, want %d", r.Len(), perBatch)
		}
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		for i, l := range lens {
			if n, err := r.Result(i); n != l || err != nil {
				t.Fatalf("batch %d write %d: %d, %v; want %d", b, i, n, err, l)
			}
		}
		if got := drain(t, rd); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("batch %d: pipe got\n%s\nwant\n%s", b, got, want.Bytes())
		}
	}
	// 2100 writes through 8 slots: the 32-bit indices went round the ring 262 times.
	if tail := *r.sqTail; tail != batches*perBatch {
		t.Errorf("sq tail %d, want %d", tail, batches*perBatch)
	}
}

// A write to a closed descriptor fails with EBADF in its own result; the writes around it
// are done.
func TestPartialFailure(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	rd, wr := pipe(t, 1<<16)
	_, bad := pipe(t, 1<<16)
	unix.Close(bad) // Cleanup closes it again, harmlessly: nothing reuses it before
	r.Write(wr, []byte("one "), unix.RWF_NOWAIT)
	r.Write(bad, []byte("lost "), unix.RWF_NOWAIT)
	r.Writev(bad, [][]byte{[]byte("lost "), []byte("too ")}, unix.RWF_NOWAIT)
	r.Write(wr, []byte("two"), unix.RWF_NOWAIT)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, unix.EBADF, unix.EBADF, nil} {
		if _, err := r.Result(i); err != want {
			t.Errorf("write %d: %v, want %v", i, err, want)
		}
	}
	if got := drain(t, rd); string(got) != "one two" {
		t.Errorf("pipe got %q", got)
	}
}

// RWF_NOWAIT: a write that finds the pipe full fails with EAGAIN at once instead of
// waiting (the ring's call returns), and the writes before it are done.
func TestNowaitFull(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	rd, wr := pipe(t, 4096) // one page: the least a pipe holds
	page := bytes.Repeat([]byte{'x'}, 4096)
	r.Write(wr, page, unix.RWF_NOWAIT)
	r.Write(wr, []byte("over"), unix.RWF_NOWAIT)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Result(0); n != len(page) || err != nil {
		t.Errorf("first write: %d, %v", n, err)
	}
	if _, err := r.Result(1); err != unix.EAGAIN {
		t.Errorf("write to a full pipe: %v, want EAGAIN", err)
	}
	if got := drain(t, rd); len(got) != len(page) {
		t.Errorf("pipe holds %d bytes, want %d", len(got), len(page))
	}
}

// Writes to a regular file (without RWF_NOWAIT, which not every file system takes) land.
func TestWriteFile(t *testing.T) {
	r := newRing(t, Options{Entries: 16})
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	var want bytes.Buffer
	for b := range 3 {
		r.Reset()
		for i := range 40 {
			rec := []byte(fmt.Sprintf("%d.%02d\n", b, i))
			if i%2 == 0 {
				r.Write(fd, rec, 0)
			} else {
				r.Writev(fd, [][]byte{rec[:2], rec[2:]}, 0)
			}
			want.Write(rec)
		}
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		for i := range r.Len() {
			if _, err := r.Result(i); err != nil {
				t.Fatalf("batch %d write %d: %v", b, i, err)
			}
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A write the kernel could not do at once goes to a worker thread and may land after
	// later ones: compare the records as a set of lines, by length and sorted content.
	if len(got) != want.Len() || !sameLines(got, want.Bytes()) {
		t.Errorf("file holds\n%s\nwant\n%s", got, want.Bytes())
	}
}

func sameLines(a, b []byte) bool {
	count := map[string]int{}
	for _, l := range bytes.Split(a, []byte("\n")) {
		count[string(l)]++
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		count[string(l)]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// A batch allocates nothing once the ring's slices have grown to its size.
func TestBatchNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on synchronisation")
	}
	r := newRing(t, Options{Entries: 16})
	rd, wr := pipe(t, 1<<20)
	frame := make([]byte, 64)
	bufs := [][]byte{frame[:14], frame[14:]}
	batch := func() {
		r.Reset()
		for i := range 40 {
			if i%2 == 0 {
				r.Write(wr, frame, unix.RWF_NOWAIT)
			} else {
				r.Writev(wr, bufs, unix.RWF_NOWAIT)
			}
		}
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		for i := range r.Len() {
			if _, err := r.Result(i); err != nil {
				t.Fatal(err)
			}
		}
		var buf [40 * 64]byte
		if _, err := unix.Read(rd, buf[:]); err != nil {
			t.Fatal(err)
		}
	}
	batch()
	if allocs := testing.AllocsPerRun(200, batch); allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

// With SingleIssuer the kernel takes submissions only from the thread that set the ring
// up: another thread gets EEXIST and its writes are withdrawn, not left for the owner's
// next call; the owner's batches go on.
func TestSingleIssuer(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, Options{Entries: 8, SingleIssuer: true})
	rd, wr := pipe(t, 1<<16)
	r.Write(wr, []byte("owner "), unix.RWF_NOWAIT)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // a thread of its own, never the owner's
		defer runtime.UnlockOSThread()
		r.Reset()
		r.Write(wr, []byte("stranger "), unix.RWF_NOWAIT)
		err := r.Submit()
		if _, werr := r.Result(0); !errors.Is(werr, unix.EEXIST) {
			err = fmt.Errorf("write's result %v, want EEXIST (Submit: %v)", werr, err)
		}
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, unix.EEXIST) {
		t.Fatalf("submit from another thread: %v, want EEXIST", err)
	}
	r.Reset()
	r.Write(wr, []byte("again"), unix.RWF_NOWAIT)
	if err := r.Submit(); err != nil {
		t.Fatalf("owner after the refusal: %v", err)
	}
	if got := drain(t, rd); string(got) != "owner again" {
		t.Errorf("pipe got %q", got)
	}
}

// New refuses what io_uring_setup refuses, with the kernel's errno.
func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("zero entries accepted")
	}
	_, err := New(Options{Entries: 1 << 20}) // beyond IORING_MAX_ENTRIES
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("1<<20 entries: %v, want EINVAL", err)
	}
}
