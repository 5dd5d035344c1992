package labdns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var testZone = Zone{
	"shared.test": {netip.MustParseAddr("198.19.1.1"), netip.MustParseAddr("198.19.1.2"), netip.MustParseAddr("fd00::1")},
	"v4only.test": {netip.MustParseAddr("198.19.1.1")},
}

func mustQuery(t testing.TB, id uint16, name string, v6 bool) []byte {
	t.Helper()
	q, err := Query(id, name, v6)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// rawQuery builds queries Query cannot: other classes, types and opcodes.
func rawQuery(t testing.TB, h dnsmessage.Header, q dnsmessage.Question) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, h)
	_ = b.StartQuestions()
	if err := b.Question(q); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestAnswer(t *testing.T) {
	name := dnsmessage.MustNewName("shared.test.")
	for _, tc := range []struct {
		name      string
		query     []byte
		wantDrop  bool
		wantRCode dnsmessage.RCode
		want      []string
	}{
		{"A lists every IPv4 host", mustQuery(t, 1, "shared.test", false), false, dnsmessage.RCodeSuccess, []string{"198.19.1.1", "198.19.1.2"}},
		{"AAAA lists the IPv6 hosts", mustQuery(t, 2, "shared.test", true), false, dnsmessage.RCodeSuccess, []string{"fd00::1"}},
		{"names are case-insensitive", mustQuery(t, 3, "SHARED.Test", false), false, dnsmessage.RCodeSuccess, []string{"198.19.1.1", "198.19.1.2"}},
		{"no address of the family is NODATA", mustQuery(t, 4, "v4only.test", true), false, dnsmessage.RCodeSuccess, nil},
		{"unknown name", mustQuery(t, 5, "other.test", false), false, dnsmessage.RCodeNameError, nil},
		{"other types are NODATA", rawQuery(t, dnsmessage.Header{ID: 6}, dnsmessage.Question{Name: name, Type: dnsmessage.TypeMX, Class: dnsmessage.ClassINET}), false, dnsmessage.RCodeSuccess, nil},
		{"other classes are refused", rawQuery(t, dnsmessage.Header{ID: 7}, dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassCHAOS}), false, dnsmessage.RCodeRefused, nil},
		{"other opcodes are not implemented", rawQuery(t, dnsmessage.Header{ID: 8, OpCode: 2}, dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}), false, dnsmessage.RCodeNotImplemented, nil},
		{"header without a question", []byte{0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, false, dnsmessage.RCodeFormatError, nil},
		{"responses are dropped", rawQuery(t, dnsmessage.Header{ID: 10, Response: true}, dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}), true, 0, nil},
		{"short messages are dropped", []byte{1, 2, 3}, true, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, ok := Answer(nil, tc.query, testZone)
			if ok == tc.wantDrop {
				t.Fatalf("answered %v, want %v", ok, !tc.wantDrop)
			}
			if !ok {
				return
			}
			var m dnsmessage.Message
			if err := m.Unpack(resp); err != nil {
				t.Fatalf("unpack answer: %v", err)
			}
			if want := uint16(tc.query[0])<<8 | uint16(tc.query[1]); m.ID != want || !m.Response {
				t.Errorf("id %d response %v, want id %d and a response", m.ID, m.Response, want)
			}
			if m.RCode != tc.wantRCode {
				t.Errorf("rcode %s, want %s", m.RCode, tc.wantRCode)
			}
			var got []string
			for _, r := range m.Answers {
				switch b := r.Body.(type) {
				case *dnsmessage.AResource:
					got = append(got, netip.AddrFrom4(b.A).String())
				case *dnsmessage.AAAAResource:
					got = append(got, netip.AddrFrom16(b.AAAA).String())
				}
				if r.Header.TTL != TTL {
					t.Errorf("ttl %d, want %d", r.Header.TTL, TTL)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("answer %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	ok, _ := Answer(nil, mustQuery(t, 7, "shared.test", false), testZone)
	nx, _ := Answer(nil, mustQuery(t, 7, "nope.test", false), testZone)
	for _, tc := range []struct {
		name    string
		msg     []byte
		id      uint16
		qname   string
		v6      bool
		want    []string
		wantErr error
	}{
		{"answer", ok, 7, "shared.test", false, []string{"198.19.1.1", "198.19.1.2"}, nil},
		{"other id", ok, 8, "shared.test", false, nil, errForeign},
		{"other name", ok, 7, "else.test", false, nil, errForeign},
		{"other type", ok, 7, "shared.test", true, nil, errForeign},
		{"nxdomain", nx, 7, "nope.test", false, nil, ErrNXDomain},
		{"query is no answer", mustQuery(t, 7, "shared.test", false), 7, "shared.test", false, nil, errForeign},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAnswer(tc.msg, tc.id, tc.qname, tc.v6)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Errorf("addresses %v, want %v", s, tc.want)
			}
		})
	}
	for cut := range len(ok) - 1 {
		if _, err := ParseAnswer(ok[:cut], 7, "shared.test", false); err == nil {
			t.Errorf("answer cut at %d of %d bytes parsed without error", cut, len(ok))
		}
	}
}

func TestResolve(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(lo))
	if err != nil {
		t.Fatal(err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	srv, err := Start(map[netip.AddrPort]Zone{ap: testZone})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	got, err := Resolve(ctx, ap, "shared.test", true)
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("fd00::1") {
		t.Errorf("Resolve AAAA = %v, %v; want [fd00::1]", got, err)
	}
	if _, err := Resolve(ctx, ap, "nope.test", false); !errors.Is(err, ErrNXDomain) {
		t.Errorf("Resolve unknown name: %v, want ErrNXDomain", err)
	}
	// Garbage does not stop the server.
	g, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = g.Write([]byte{0xff})
	g.Close()
	if got, err := Resolve(ctx, ap, "v4only.test", false); err != nil || len(got) != 1 {
		t.Errorf("Resolve after garbage = %v, %v", got, err)
	}
	if answered, _ := srv.Stats(); answered != 3 {
		t.Errorf("server answered %d queries, want 3", answered)
	}
}

// TestResolveResends drops the first query, as a lossy path would: the
// resolver must ask again.
func TestResolveResends(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 512)
		for i := 0; ; i++ {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if i == 0 {
				continue
			}
			if resp, ok := Answer(nil, buf[:n], testZone); ok {
				_, _ = c.WriteToUDPAddrPort(resp, from)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	got, err := Resolve(ctx, c.LocalAddr().(*net.UDPAddr).AddrPort(), "v4only.test", false)
	if err != nil || len(got) != 1 {
		t.Fatalf("Resolve = %v, %v", got, err)
	}
	if d := time.Since(start); d < Resend {
		t.Errorf("answered after %s, before the resend at %s", d, Resend)
	}
}

func TestResolveCancelled(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Resolve(ctx, c.LocalAddr().(*net.UDPAddr).AddrPort(), "v4only.test", false)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Resolve against a silent server: %v, want the context's deadline", err)
	}
}

func FuzzAnswer(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		for _, n := range []string{"shared.test", "v4only.test", "nope.test"} {
			q, _ := Query(1, n, v6)
			f.Add(q)
		}
	}
	f.Add([]byte{0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, query []byte) {
		resp, ok := Answer(nil, query, testZone)
		if !ok {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if !m.Response || len(query) < 2 || m.ID != uint16(query[0])<<8|uint16(query[1]) {
			t.Fatalf("answer id %d response %v for query id %x", m.ID, m.Response, query[:min(2, len(query))])
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		for _, n := range []string{"shared.test", "v4only.test", "nope.test"} {
			a, _ := Answer(nil, mustQuery(f, 1, n, v6), testZone)
			f.Add(a, v6)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte, v6 bool) {
		addrs, err := ParseAnswer(msg, 1, "shared.test", v6)
		if err != nil {
			return
		}
		for _, a := range addrs {
			if a.Is4() == v6 {
				t.Fatalf("address %s in an answer for v6=%v", a, v6)
			}
		}
	})
}
