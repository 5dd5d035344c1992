// Package server is the lab's shared-hosting web server: one process that
// answers on every address of the server namespace for many names, over TLS
// (a certificate per name issued at start by a lab CA, a default
// certificate for unknown names), plain HTTP and QUIC. GET /size/N returns
// a body of N bytes, so scenarios choose how long a transfer lasts.
//
// Addresses listed in Config.ResetAfterResponse behave like a load balancer
// that aborts connections once the response has been delivered: the socket
// waits until the peer has acknowledged every byte, then closes with
// SO_LINGER 0, which sends a RST — the benign look-alike of an injected
// reset.
package server
