package analyzer

import (
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tamperscope/tamperscope/analyzer/detect"
	"github.com/tamperscope/tamperscope/internal/recent"
)

// maxNamesPerIP bounds the names remembered per address: collateral lists
// stay readable and memory stays bounded on resolvers that see everything.
const maxNamesPerIP = 1000

// dnsNames remembers which names DNS answers mapped to which addresses:
// one source of the collateral of an IP block (the other is ClientHellos).
// Addresses not seen in an answer for a while are forgotten, as the
// detectors forget theirs (detect.AddressMemory).
type dnsNames struct {
	byIP *recent.Map[netip.Addr, map[string]struct{}]
	p    dnsmessage.Parser
}

func newDNSNames() *dnsNames {
	return &dnsNames{byIP: recent.New[netip.Addr, map[string]struct{}](detect.AddressMemory, detect.MaxAddresses)}
}

// addAnswer records the A/AAAA records of a DNS response seen at packet
// time nowNs and returns how many it found. Malformed messages are
// ignored: DNS here is a hint.
func (d *dnsNames) addAnswer(b []byte, nowNs int64) int {
	h, err := d.p.Start(b)
	if err != nil || !h.Response || h.RCode != dnsmessage.RCodeSuccess {
		return 0
	}
	q, err := d.p.Question()
	if err != nil {
		return 0
	}
	if err := d.p.SkipAllQuestions(); err != nil {
		return 0
	}
	// Every address of the answer belongs to the name the client asked
	// for, whatever CNAME chain led there.
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	n := 0
	for {
		rh, err := d.p.AnswerHeader()
		if err != nil {
			return n
		}
		var addr netip.Addr
		switch rh.Type {
		case dnsmessage.TypeA:
			r, err := d.p.AResource()
			if err != nil {
				return n
			}
			addr = netip.AddrFrom4(r.A)
		case dnsmessage.TypeAAAA:
			r, err := d.p.AAAAResource()
			if err != nil {
				return n
			}
			addr = netip.AddrFrom16(r.AAAA)
		default:
			if err := d.p.SkipAnswer(); err != nil {
				return n
			}
			continue
		}
		set, _ := d.byIP.Get(addr)
		if set == nil {
			set = map[string]struct{}{}
		}
		d.byIP.Put(nowNs, addr, set)
		if len(set) < maxNamesPerIP {
			set[name] = struct{}{}
		}
		n++
	}
}

// namesOf returns the names DNS answers gave for ip, sorted.
func (d *dnsNames) namesOf(ip netip.Addr) []string {
	set, _ := d.byIP.Get(ip)
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
