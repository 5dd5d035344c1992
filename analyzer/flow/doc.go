// Package flow is the analyzer's bidirectional flow table, its hot path.
//
// Update takes one schemas.PacketMeta, finds or creates its flow under a
// canonical Key (both directions meet; Key.Hash is symmetric, for sharding
// and partitioning) and returns the flow's State and the packet's Dir. The
// engine then runs parsers and detectors on the State. In steady state
// Update allocates nothing: States live in fixed chunks, the index is an
// open-addressing table without tombstones, payload buffers come from a
// free list, and everything is recycled when a flow ends.
//
// Memory layout. With many live flows each packet's State is a likely
// cache miss, so the table is laid out by how often fields are touched.
// Index slots are 8 bytes (32 hash bits and the State index), so the index
// of a full table stays in cache and the key is compared only on a hash
// match. A State puts what every packet reads on its first cache line, the
// per-direction counters and the hot half of each Zeek endpoint on lines of
// their own, and handshake-only and end-of-flow fields last. Reset evidence
// (State.RST) comes from a free list on the first RST; throughput bins
// (State.Down) sit in an array parallel to the States, zeroed on the first
// server data; both stay nil for flows without. LRU links live in a dense
// array beside the States. On BenchmarkUpdate (1M packets over 50k
// interleaved flows, `go test ./analyzer/flow -run xxx -bench Update
// -benchtime 3000000x`, old and new runs interleaved on a shared 2-core
// AMD EPYC) this took Update from 343-420 ns to 143-207 ns per packet;
// what remains is mostly the DRAM miss on the State's first line, which
// only prefetching a later packet's State could hide.
//
// Client and server. The client is the sender of the first SYN without ACK.
// Without one, the table follows Zeek's WantConnection heuristic on its
// likely server ports (Config.ServerPorts): the side whose port is listed
// is the server (both listed: the lower port, except for a SYN-ACK). Where
// Zeek keeps the first sender as originator, the table goes further: a
// first SYN-ACK marks its sender as the server, and between two unlisted
// ports the lower port is the server. Any such flip adds '^' to the
// history, as in Zeek. UDP: the first sender, unless only its port is
// listed. ICMP echo: the sender of the request.
//
// Zeek model. conn_state and history come from a port of Zeek's TCP
// endpoint state machine (TCPSessionAdapter, TCP_Endpoint, the reassembler's
// gap accounting and main.zeek's conn_state), with Zeek's repetition rules:
// s h f r repeat only for a new sequence number, a d i q once per side,
// t w g at 1, 10, 100... events. Known differences: checksums are not
// verified ('c' never appears and a bad-checksum packet is counted), the
// gap model remembers at most four holes per side, truncated captures are
// not detected (Zeek declines to reassemble them), and a SYN that repeats
// the ISN of a closed flow stays in that flow (Zeek starts a new one).
//
// Sequence analysis. A data segment lying entirely below the highest
// sequence seen is a retransmission when every byte of it was seen before.
// When it fills a hole it is out of order if it arrives within one SYN RTT
// (at least 3 ms) of the segment that last advanced the highest
// sequence; later, it is a retransmission of data lost before the vantage.
// Segments that extend the highest sequence are new, even if they overlap.
//
// Payload for parsers. Each TCP direction reassembles the first
// Config.StreamBytes of its stream from ISN+1 (or from the first data seen
// without a SYN), placing out-of-order segments and keeping the first copy
// of overlapping bytes; State.Stream returns the contiguous prefix. UDP
// payload is not kept: parsers read each datagram as it passes (a QUIC
// Initial is self-contained). Payload comes from PacketMeta.Payload, the capture's snapshot: bytes it
// does not carry leave a hole. A collecting direction holds a buffer of
// StreamBytes bytes; State.StopCollect returns it to the
// free list at once, which the engine should do as soon as its parser is
// done: the next flow then reuses a buffer that is still in cache.
//
// Expiry uses packet time only. Flows sit in one LRU list per timeout class
// (TCP attempt, TCP, TCP closed, UDP, ICMP), so expiry pops list tails and
// eviction at Config.MaxFlows takes the oldest tail. Closed TCP flows
// linger (Config.TCPClosedLinger) so late packets, such as server data
// racing an injected RST, land in the same flow; a SYN with a new ISN on a
// known 4-tuple starts a new flow (port reuse).
//
// ICMP errors (PacketMeta.Quoted set) count on the flow they quote. ICMP
// echo flows are keyed by the identifier the decoder places in SrcPort and
// DstPort. IP later-fragments carry no ports: a direct-mapped cache from
// (addresses, protocol, IP ID) to the first fragment's flow adds their
// bytes to that flow; the rest are only counted in Stats. Shard with
// Key.AddrHash when fragments must meet their flow.
//
// See docs/design/001-pipeline.md for where the table sits in the analyzer.
package flow
