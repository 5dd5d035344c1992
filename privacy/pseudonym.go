package privacy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/tamperscope/tamperscope/privacy/cryptopan"
	"github.com/tamperscope/tamperscope/schemas"
)

// DefaultLocalNets returns the ranges that are vantage-local when the
// operator names none: RFC 1918 private space, shared address space (RFC
// 6598, carrier-grade NAT), IPv4 and IPv6 link-local, and IPv6 unique local
// addresses. Servers are not found there; the clients behind a vantage are.
func DefaultLocalNets() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("fe80::/10"),
	}
}

// HostPrefixes returns the capture host's own unicast addresses, loopback
// excepted, as single-address prefixes.
func HostPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || ip.IsLoopback() {
			continue
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// LocalPrefixes returns what a vantage treats as local: the host's own
// addresses plus nets, or plus DefaultLocalNets when nets is empty.
func LocalPrefixes(nets []netip.Prefix) ([]netip.Prefix, error) {
	host, err := HostPrefixes()
	if err != nil {
		return nil, err
	}
	if len(nets) == 0 {
		nets = DefaultLocalNets()
	}
	return append(host, nets...), nil
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes or bare
// addresses (a single-address prefix), as a --local-net flag takes them.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("parse local network %q: want a CIDR prefix or an address", s)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Pseudonymizer replaces the local addresses of packets with their
// Crypto-PAn pseudonyms. It implements ingest.Anonymizer. It is not safe
// for concurrent use: Clone one per ingest goroutine.
type Pseudonymizer struct {
	cp    *cryptopan.Anonymizer
	local []netip.Prefix
	st    Stats
}

// Stats counts what a Pseudonymizer did.
type Stats struct {
	Packets uint64 // packets seen
	Addrs   uint64 // addresses replaced
	Cache   cryptopan.Stats
}

// NewPseudonymizer returns a Pseudonymizer that pseudonymizes addresses
// inside local (see LocalPrefixes) with key.
func NewPseudonymizer(key [cryptopan.KeySize]byte, local []netip.Prefix) *Pseudonymizer {
	l := make([]netip.Prefix, 0, len(local))
	for _, p := range local {
		if p.IsValid() {
			l = append(l, p.Masked())
		}
	}
	return &Pseudonymizer{cp: cryptopan.New(key), local: l}
}

// Clone returns a Pseudonymizer with the same key and prefixes and its own
// cache and counts.
func (ps *Pseudonymizer) Clone() *Pseudonymizer {
	return &Pseudonymizer{cp: ps.cp.Clone(), local: ps.local}
}

// Stats returns the counts so far.
func (ps *Pseudonymizer) Stats() Stats {
	s := ps.st
	s.Cache = ps.cp.Stats()
	return s
}

// Local reports whether a is vantage-local.
func (ps *Pseudonymizer) Local(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range ps.local {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Anonymize rewrites p's local addresses in place: source, destination and
// the tuple an ICMP error quotes. It allocates nothing.
func (ps *Pseudonymizer) Anonymize(p *schemas.PacketMeta) {
	ps.st.Packets++
	ps.addr(&p.Src)
	ps.addr(&p.Dst)
	if p.Quoted.Src.IsValid() || p.Quoted.Dst.IsValid() {
		ps.addr(&p.Quoted.Src)
		ps.addr(&p.Quoted.Dst)
	}
}

func (ps *Pseudonymizer) addr(a *netip.Addr) {
	if ps.Local(*a) {
		*a = ps.cp.Anonymize(*a)
		ps.st.Addrs++
	}
}
