// Package bpf holds the eBPF capture program (capture.c), its bpf2go
// output and the loader that configures, loads and attaches it.
//
// The program is a TC classifier attached to both directions of an
// interface (TCX where the kernel has it, a clsact qdisc otherwise). It
// parses IPv4/IPv6 TCP, UDP and ICMP headers into a Record and submits it
// to a ring buffer, waking the reader only past a fill threshold so one
// wakeup carries thousands of records. A per-flow LRU map applies the
// payload snapshot policy in the kernel: the first SnapBytes bytes of at
// most SnapPackets data packets per flow direction travel with their
// records, bulk data never does. Filters on ports and networks run before
// anything is recorded. Everything the program loses (ring full, flow map
// full) is counted in per-CPU counters that Counters reports.
//
// The program returns TC_ACT_UNSPEC and never alters packets, so other TC
// programs on the interface keep running. See docs/capture.md.
//
// Regenerate with "make generate" (clang, libbpf-dev); the generated Go and
// object files are committed so building needs no clang.
package bpf
