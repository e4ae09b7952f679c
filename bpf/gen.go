package bpf

// The include paths cover the Debian/Ubuntu multiarch location of <asm/types.h>
// on the two architectures we build on; clang ignores the one that is absent.
//go:generate go tool bpf2go -tags linux -target bpfel -type vxdp_reason -cflags "-O2 -g -Wall -Werror" xdp xdp.c -- -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
//go:generate go tool bpf2go -tags linux -target bpfel -type vxdp_port_reason -cflags "-O2 -g -Wall -Werror" port port.c -- -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
