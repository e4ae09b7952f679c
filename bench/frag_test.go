package bench

import (
	"errors"
	"testing"
)

func TestParseFragInuse(t *testing.T) {
	const sockstat = `sockets: used 5
TCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0
UDP: inuse 0 mem 1
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 3 memory 12544
`
	const sockstat6 = `TCP6: inuse 0
UDP6: inuse 0
UDPLITE6: inuse 0
RAW6: inuse 0
FRAG6: inuse 2 memory 8000
`
	if n, err := parseFragInuse(sockstat + sockstat6); err != nil || n != 5 {
		t.Errorf("parseFragInuse = %d, %v; want 5", n, err)
	}
	if n, err := parseFragInuse(sockstat); err != nil || n != 3 {
		t.Errorf("IPv4 alone: %d, %v; want 3", n, err)
	}
	for _, bad := range []string{"", "TCP: inuse 0\n", "FRAG: inuse x memory 0\n", "FRAG: memory 0 inuse 1\n", "FRAG: inuse -1 memory 0\n"} {
		if _, err := parseFragInuse(bad); !errors.Is(err, errProcFormat) {
			t.Errorf("parseFragInuse(%q) = %v, want errProcFormat", bad, err)
		}
	}
}
