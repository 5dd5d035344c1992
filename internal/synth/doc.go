// Package synth writes deterministic synthetic captures for benchmarks and
// tests: many interleaved TCP/TLS flows whose ClientHellos take the shapes
// of Chrome, Firefox, Safari and curl (the post-quantum ones split over two
// segments by their ML-KEM key share), a share of IPv6, QUIC
// and DNS noise, and a small share of reset and blackholed flows. The same
// Config and seed always give the same packet sequence.
package synth
