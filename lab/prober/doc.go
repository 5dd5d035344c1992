// Package prober is the lab's client: it makes one connection attempt per
// Request — TLS with SNI, plain HTTP with Host, or a QUIC handshake whose
// Initial carries the SNI — from a client port it chooses itself, so the
// attempt's 5-tuple is known even when the handshake never completes, and
// reports what the client saw: ok, reset, refused, unreachable, timeout,
// or a deliberate abort. With a Resolver set, every attempt first resolves
// its name there (package labdns), as a real client does before it
// connects, and fails if the answer lacks the address it is about to use.
//
// Sockets are created in the network namespace of the calling OS thread;
// callers running in the lab wrap Do in netns.Do.
package prober
