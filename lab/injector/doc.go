// Package injector is the lab's on-path censor: it sniffs the traffic the
// router forwards through AF_PACKET sockets on the router's two interfaces
// and never drops a packet itself, the way the Great Firewall's injectors
// sit beside the path. When a TLS ClientHello names a target it forges TCP
// resets towards both ends, in one of two styles:
//
//   - Burst (GFW-style): a RST without ACK and with ack 0, three RST+ACKs
//     with the right sequence number and RST+ACKs with shifted sequence
//     numbers, all with a foreign TTL and random IP IDs.
//   - Copy: one RST+ACK per direction whose TTL and IP ID continue those of
//     the packet it imitates, so only timing, the race with real data and
//     sequence numbers give it away.
//
// Residual mode adds, after a trigger, a reset of every new flow to the same
// server address and port for a while (answering the SYN-ACK), the way
// Clayton et al. saw the GFW punish later connections. QUIC mode decrypts
// client Initials (analyzer/quic, analyzer/tlshello) and, when the SNI matches, blackholes
// the UDP 4-tuple with an iptables DROP in both directions, because an
// on-path observer cannot drop the packets itself.
package injector
