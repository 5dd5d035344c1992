// Package detect judges flows and finds censorship across them.
//
// Per flow (flowsig.go), at the moment a flow ends: its outcome and a stage
// signature in the vocabulary of Cloudflare's passive tampering study
// (post_syn, post_ack, post_psh, later_in_flow x timeout, rst, rst+ack,
// several resets, changing seq/ack, ack 0), the injection evidence of its
// resets (TTL and IP-ID against the claimed sender's earlier packets,
// seq/ack consistency, a race with later real data, burst shape, timing)
// folded into an injection score, and a censor fingerprint. Evidence only
// ever raises the score: an injector that copies TTL and IP ID is still
// caught by race, seq and timing evidence.
//
// Across flows (rules.go), per server address and time window: each rule
// is a plug-in registered in rules, reading the window's flow summaries
// and emitting findings — SNI/Host/QUIC filtering judged against same-IP
// controls, IP blocking with its collateral, residual blocking, throttling
// and TLS interception. A finding always says why (counts, examples,
// evidence) and says "insufficient_evidence" when the capture cannot tell.
//
// Design notes: docs/design/002-detection.md.
package detect
