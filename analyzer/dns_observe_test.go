package analyzer

import (
	"github.com/tamperscope/tamperscope/schemas"
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
	e.ObserveDNS(&schemas.PacketMeta{Payload: dnsResponse(t, "Blocked.Example.", [4]byte{198, 51, 100, 7})})
	e.ObserveDNS(&schemas.PacketMeta{Payload: []byte("not dns")})
	e.ObserveDNS(&schemas.PacketMeta{})
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
	e.ObserveDNS(&schemas.PacketMeta{Payload: dnsResponse(t, "old.example.", ip.As4())})
	e.Advance(t0 + int64(detect.AddressMemory)/2)
	e.ObserveDNS(&schemas.PacketMeta{Payload: dnsResponse(t, "other.example.", [4]byte{198, 51, 100, 8})})
	if got := e.dns.namesOf(ip); !slices.Equal(got, []string{"old.example"}) {
		t.Errorf("half a day later: names %q, want [old.example]", got)
	}
	e.Advance(t0 + 3*int64(detect.AddressMemory))
	e.ObserveDNS(&schemas.PacketMeta{Payload: dnsResponse(t, "other.example.", [4]byte{198, 51, 100, 8})})
	if got := e.dns.namesOf(ip); len(got) != 0 {
		t.Errorf("three days later: names %q, want none", got)
	}
}

// TestObserveDNSBeforeAnyPacket: an engine (a partition, a shard) given
// DNS answers of others before any packet of its own keeps their names
// once its packets come: they are recorded as of the answers' own time.
func TestObserveDNSBeforeAnyPacket(t *testing.T) {
	e := New(Config{}, nil)
	t0 := int64(1_700_000_000e9)
	ip := netip.AddrFrom4([4]byte{198, 51, 100, 7})
	e.ObserveDNS(&schemas.PacketMeta{TimestampNs: t0, Payload: dnsResponse(t, "early.example.", ip.As4())})
	e.Advance(t0 + 1e9)
	e.ObserveDNS(&schemas.PacketMeta{TimestampNs: t0 + 1e9, Payload: dnsResponse(t, "later.example.", [4]byte{198, 51, 100, 8})})
	if got := e.dns.namesOf(ip); !slices.Equal(got, []string{"early.example"}) {
		t.Errorf("names %q, want [early.example]", got)
	}
}
