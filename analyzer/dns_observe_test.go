package analyzer

import (
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tamperscope/tamperscope/analyzer/detect"
)

func dnsResponse(t *testing.T, name string, addr [4]byte) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true})
	n := dnsmessage.MustNewName(name)
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	if err := b.StartAnswers(); err != nil {
		t.Fatal(err)
	}
	if err := b.AResource(dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: addr}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestObserveDNS checks that a DNS response seen without its flow names
// the address for collateral, and that garbage is ignored.
func TestObserveDNS(t *testing.T) {
	e := New(Config{}, nil)
	e.ObserveDNS(dnsResponse(t, "Blocked.Example.", [4]byte{198, 51, 100, 7}))
	e.ObserveDNS([]byte("not dns"))
	e.ObserveDNS(nil)
	ip := netip.AddrFrom4([4]byte{198, 51, 100, 7})
	if got := e.dns.namesOf(ip); !slices.Equal(got, []string{"blocked.example"}) {
		t.Errorf("names of %v: %q, want [blocked.example]", ip, got)
	}
	if st := e.Stats(); st.Packets != 0 || st.Flow.Flows != 0 || st.Parse.DNSAnswers != 1 {
		t.Errorf("stats %+v: want one DNS answer and no packet or flow", st)
	}
}

// TestDNSNamesForgotten: the names an answer gave an address are
// forgotten once no answer named it for a few days of packet time.
func TestDNSNamesForgotten(t *testing.T) {
	e := New(Config{}, nil)
	ip := netip.AddrFrom4([4]byte{198, 51, 100, 7})
	t0 := int64(1_700_000_000e9)
	e.Advance(t0)
	e.ObserveDNS(dnsResponse(t, "old.example.", ip.As4()))
	e.Advance(t0 + int64(detect.AddressMemory)/2)
	e.ObserveDNS(dnsResponse(t, "other.example.", [4]byte{198, 51, 100, 8}))
	if got := e.dns.namesOf(ip); !slices.Equal(got, []string{"old.example"}) {
		t.Errorf("half a day later: names %q, want [old.example]", got)
	}
	e.Advance(t0 + 3*int64(detect.AddressMemory))
	e.ObserveDNS(dnsResponse(t, "other.example.", [4]byte{198, 51, 100, 8}))
	if got := e.dns.namesOf(ip); len(got) != 0 {
		t.Errorf("three days later: names %q, want none", got)
	}
}
