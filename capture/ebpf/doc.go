// Package ebpf is the live capture source built on the bpf package's TC
// program. The kernel already produces packet metadata and applies the
// payload snapshot policy, so Run does not go through capture.Source and
// ingest's decoder: it turns ring-buffer records straight into
// schemas.PacketMeta batches and publishes them the way ingest.Run does.
//
// TC egress (and ingress after GRO) sees GSO super-packets, one record for
// what the wire carries as several segments. Run expands such a TCP or UDP
// record into the segments the kernel will send, using the skb's gso_size:
// sequence numbers advance by gso_size, FIN and PSH stay on the last
// segment, CWR on the first, the IPv4 ID counts up, and the snapshot is cut
// along segment boundaries. Records therefore count wire packets, as
// tcpdump on the interface does. See docs/capture.md.
package ebpf
