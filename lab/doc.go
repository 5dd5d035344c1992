// Package lab is tamperscope's censor lab (DESIGN.md, "Censor lab"): it
// builds a client <-> censor router <-> server topology in network
// namespaces (package netns), starts a shared-hosting TLS/HTTP/QUIC server
// (package server), installs one censor per scenario on the router —
// iptables string matches with REJECT or DROP, IP blocks, HTB throttling
// classes, or the project's own on-path injector (package injector) — and
// drives the client (package prober) through many interleaved attempts per
// server address and name. Each scenario has its own authoritative DNS
// server (package labdns) holding every name of the scenario with all the
// addresses that host it; the prober resolves each name there right before
// connecting, so the capture carries the DNS answers from which a passive
// observer learns an address's collateral names. Clients wait 4 s (7 s
// for blackholed QUIC) before giving up, so every timeout shows at least
// the 3 s of unanswered retries an observer needs to call it one.
//
// Every scenario has its own server addresses, so packets of one scenario
// (late retransmissions included) never meet another scenario's rules, and
// writes two files into <OutDir>/<scenario>-seed<N>/: capture.pcap, taken
// with tcpdump on the client's interface, and truth.json, the ground truth —
// per attempt its 5-tuple, name, label (the finding kind it should produce,
// or "benign" with a reason), the outcome the design expects and the
// outcome the client saw; per scenario the findings a detector should
// report. The seed picks names, addresses, counts and rates, so a seed
// reproduces a scenario.
//
// Run needs root and the tools lab/setup.sh installs. It removes everything
// it created on return, including on error, panic and context
// cancellation, and removes namespaces left behind by lab runs that died.
package lab
