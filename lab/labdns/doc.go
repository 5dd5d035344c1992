// Package labdns is the lab's DNS: a small authoritative server and the stub
// resolver the prober asks before it connects. Real clients resolve a name
// before they open a connection, and those answers are how a passive
// observer learns which names an address hosts — the collateral of an IP
// block. The server answers A and AAAA queries from a Zone mapping every
// name to all the addresses that host it; a name it does not hold gets
// NXDOMAIN, a held name without an address of the asked family an empty
// NOERROR answer. Each listening address serves its own zone, so every
// scenario can have its own resolver that the censor's rules never touch.
//
// Queries and answers are untrusted bytes on both sides: malformed
// messages are counted and dropped by the server and rejected with an
// error by the resolver, never a panic.
package labdns
