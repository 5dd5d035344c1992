// Package synth writes deterministic synthetic captures for benchmarks and
// tests: many interleaved TCP/TLS flows with real Go ClientHellos (some
// split over two segments by their ML-KEM key share), a share of IPv6, QUIC
// and DNS noise, and a small share of reset and blackholed flows. The same
// Config and seed always give the same packet sequence.
package synth
