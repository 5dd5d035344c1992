// Package afpacket is the live capture source that needs no eBPF: an
// AF_PACKET socket with a TPACKET_V3 ring (github.com/gopacket/gopacket's
// pure-Go afpacket, no cgo) read zero-copy. It is the fallback when the
// eBPF program cannot load, and the source of choice when the real frames
// matter (--pcap), since it sees packets after GSO segmentation, as the
// wire carries them.
//
// Frames are Ethernet (the kernel's stripped VLAN tag is put back). The
// kernel's drop counter (PACKET_STATISTICS) is reported as Stats.Drops.
// Filtering is done in user space with bpf.Filter's semantics, so both
// sources record the same packets.
package afpacket
