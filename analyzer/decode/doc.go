// Package decode turns one captured link-layer frame (capture.Frame) into
// one schemas.PacketMeta: the innermost IP header, its transport header,
// and the transport payload as a slice of the frame. It is the first step
// of the one analyzer code path (docs/design/001-pipeline.md); every
// capture source feeds it.
//
// # Model
//
// A Decoder is owned by one worker goroutine. Decode resets the
// PacketMeta, fills it, counts the outcome in Stats by Reason, and
// allocates nothing. p.Payload aliases f.Data, so it is valid only as long
// as the frame is; copy it to keep it.
//
// Link types: Ethernet II and 802.3 with LLC/SNAP, 802.1Q, 802.1ad and
// stacked tags (QinQ, QinQinQ, TPIDs 0x9100-0x9300), MPLS (also with a
// pseudowire control word before Ethernet), PPPoE session; Linux SLL and
// SLL2; raw IP (101, and the BSD DLT_RAW values 12 and 14), IPv4 (228) and
// IPv6 (229); BSD NULL and OpenBSD LOOP with the address family in either
// byte order (AF_INET 2, AF_INET6 24, 28, 30); PPP (9, 50); Linux NFLOG
// (239). Non-IP frames
// (ARP, LLDP, PPP control, other address families) are ReasonNotIP: a
// counted skip, not damage.
//
// Tunnels are followed to the innermost IP header, as tshark reports
// addresses: IP-in-IP (4in4, 6in4, 4in6, 6in6), GRE (versions 0 and 1,
// transparent Ethernet bridging, ERSPAN types I-III), and over UDP VXLAN
// (4789), Geneve (6081), GTP-U (2152) and Teredo (3544); the UDP ports are
// Options. A UDP tunnel port only suggests a tunnel: when the payload is
// not one, or carries no IP (ARP over VXLAN), the outer UDP packet is
// reported. Teredo is followed only when a well-formed IPv6 header fills
// the datagram exactly. Tunnels inside IP fragments are not followed: the
// outer fragment is reported, with the tunnel protocol as an unknown
// transport.
//
// # Lengths
//
// IPLen and PayloadLen come from the headers, not from the capture:
// a snaplen cut leaves them whole and only shortens Payload, and Ethernet
// padding past the IP total length is not payload. An IPv4 total length
// of 0 and an IPv6 payload length of 0 (TSO and BIG TCP super-packets
// seen before segmentation, jumbograms) take their length from the
// capture. When the frame's wire length is
// known and an IP header claims more bytes than the frame had on the
// wire, the packet is decoded but returned as ReasonTruncatedIPPayload:
// its PayloadLen is an upper bound. For UDP, PayloadLen is the smaller of
// the UDP length and what the IP header leaves, so the fragments of one
// datagram add up to it.
//
// # Fragments
//
// A first fragment (offset 0, more fragments) is decoded in full and
// marked FragFirst; its ports are the flow's. A later fragment has no
// transport header: Decode fills the IP fields (addresses, Proto, TTL,
// IPID, FragOff), sets Frag = FragLater and PayloadLen to the fragment's
// data, and returns ErrFragLater, so a flow table can still count its
// bytes, matching it to the first fragment by addresses, protocol and
// IPv4 ID. IPv6 fragments keep the flow label in IPID, like every IPv6
// packet; the fragment header's identification is not kept.
//
// # ICMP
//
// ICMP and ICMPv6 fill ICMPType and ICMPCode; PayloadLen and Payload
// start after the 8-byte ICMP header. Echo request and reply (and ICMPv4
// timestamp) put their identifier in both SrcPort and DstPort, so each
// ping session is its own flow and a reply matches its request under a
// symmetric flow key. Errors (ICMPv4 types 3, 4, 5, 11, 12; ICMPv6 types
// 1-4) fill Quoted from the quoted IP header and its first 8 bytes, as
// far as the quote goes.
//
// # Errors
//
// Decode returns nil for a full decode, otherwise one preallocated *Error
// per Reason (ErrTruncatedIP, ErrFragLater, ...), comparable with == or
// errors.Is. errors.Is(err, ErrPartial) says the PacketMeta still holds
// the innermost IP header's fields (later fragments, unknown transports,
// transport headers cut short, IP lengths beyond the wire frame);
// errors.Is(err, ErrTruncated) says a header or the datagram was cut
// short. Nothing panics on any input (FuzzDecode).
//
// # Why hand-written
//
// STYLE.md suggests gopacket's DecodingLayerParser. It was measured
// against this decoder on the same frames, filling the same fields, with
// CPU time per packet on one locked thread (the machine's cores were
// shared, so wall-clock ns/op was meaningless):
//
//	go test -run XXX -bench . -benchtime 3000000x -cpu 1 ./analyzer/decode/
//
//	                                  this decoder        DecodingLayerParser v1.7.7
//	Ethernet/IPv4/TCP, SYN options    34 ns  (29 Mpps)    133 ns (7.5 Mpps)
//	Ethernet/IPv4/TCP, SACK + TS      32 ns  (31 Mpps)    145 ns (6.9 Mpps)
//	Ethernet/IPv6/TCP                 28 ns  (36 Mpps)     75 ns (13 Mpps)
//	VXLAN/Ethernet/IPv4/TCP           46 ns  (22 Mpps)    -
//
// Both allocate nothing on valid frames. The parser is already below the
// 8 Mpps goal for the common case before any of what follows, which it
// lacks: its truncation errors are fmt.Errorf strings (an allocation per
// bad packet, and no reason to count by); it has no Teredo, and one
// struct per layer type, so the outer IPv4 header of a tunnel is
// overwritten by the inner one before the tunnel can be judged; the IPv6
// routing header is not a DecodingLayer, and ICMP quotes and PPP in GRE
// need code of one's own anyway; and it does not know a wire length to
// tell a snaplen cut from a datagram longer than its frame.
package decode
