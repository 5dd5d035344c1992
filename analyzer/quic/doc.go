// Package quic reads the TLS handshake out of QUIC Initial packets.
//
// A QUIC Initial packet is encrypted, but with keys anyone can derive: they
// come from a fixed, version-specific salt and the Destination Connection ID
// the client picked (RFC 9001 section 5.2, RFC 9369 section 3.3). An on-path
// censor therefore sees the ClientHello, and so does a passive observer; this
// package gives the pipeline the same view, so that a QUIC flow carries the
// SNI it asked for just like a TCP flow does (DESIGN.md, "SNI filtering ...
// Same for HTTP Host and QUIC Initial SNI").
//
// The model has two stages. A Decoder turns one UDP datagram into an Initial:
// it walks the coalesced long-header packets, skips Handshake and 0-RTT
// packets by their length, removes header protection, authenticates and
// decrypts every Initial packet with AES-128-GCM and lists the CRYPTO frames
// it finds. An Assembler then puts the CRYPTO stream of one connection back
// together across datagrams — clients split a large ClientHello over several
// Initials, send its pieces out of order and retransmit them — and reports
// when the stream starts with a complete handshake message, which the TLS
// parser takes from there. A Flow ties the two together for one UDP flow:
// the client keeps the keys of its first DCID after it switches to the
// server's connection ID, so later Initials only decrypt with state.
//
// Cost: key derivation dominates. ParseInitial, which derives keys for
// every call, takes about 10 µs and 53 allocations for the RFC 9001 client
// Initial; a Decoder reusing the keys of the same connection takes about
// 0.6 µs and allocates nothing (go test -bench . -benchtime 2000x
// ./analyzer/quic, 2-core VM).
//
// Versions: QUIC v1 (RFC 9000), v2 (RFC 9369: other salt, other HKDF labels,
// other packet-type bits), IETF drafts 23 to 34 and the mvfst versions built
// on draft 27, Google's TLS-based T050 and T051, and the reserved
// 0x?a?a?a?a versions clients send to provoke version negotiation (no salt
// is defined for those, so the known ones are tried and the AEAD tag tells
// which one was used). Google QUIC with its own crypto handshake (Q0xx),
// version negotiation and Retry packets are recognised and reported as
// errors, not decrypted.
//
// The package never trusts a length it read: bad input yields one of the
// sentinel errors (ErrNotQUIC, ErrNotInitial, ErrUnsupportedVersion,
// ErrDecrypt, ErrTruncated, ErrCryptoLimit), to be counted by the caller.
package quic
