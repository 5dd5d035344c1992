package privacy

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/privacy/cryptopan"
	"github.com/tamperscope/tamperscope/schemas"
)

var _ ingest.Anonymizer = (*Pseudonymizer)(nil)

var testKey = Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func TestPseudonymizerRewritesOnlyLocal(t *testing.T) {
	local, err := ParsePrefixes("192.168.0.0/16, fd00::/8, 198.51.100.9")
	if err != nil {
		t.Fatal(err)
	}
	ps := NewPseudonymizer(testKey, local)
	cp := cryptopan.New(testKey)
	a := netip.MustParseAddr
	tests := []struct {
		name                 string
		in                   schemas.PacketMeta
		srcLocal, dstLocal   bool
		qsrcLocal, qdstLocal bool
	}{
		{"client to server", schemas.PacketMeta{Src: a("192.168.1.20"), Dst: a("203.0.113.5")}, true, false, false, false},
		{"server to client", schemas.PacketMeta{Src: a("203.0.113.5"), Dst: a("192.168.1.20")}, false, true, false, false},
		{"host address", schemas.PacketMeta{Src: a("198.51.100.9"), Dst: a("203.0.113.5")}, true, false, false, false},
		{"host neighbour is remote", schemas.PacketMeta{Src: a("198.51.100.10"), Dst: a("203.0.113.5")}, false, false, false, false},
		{"ipv6", schemas.PacketMeta{Src: a("fd00::20"), Dst: a("2001:db8::1")}, true, false, false, false},
		{"icmp error quotes the client", schemas.PacketMeta{Src: a("203.0.113.1"), Dst: a("192.168.1.20"),
			Quoted: schemas.Quoted{Src: a("192.168.1.20"), Dst: a("203.0.113.5")}}, false, true, true, false},
		{"mapped form", schemas.PacketMeta{Src: a("::ffff:192.168.1.20"), Dst: a("203.0.113.5")}, true, false, false, false},
		{"invalid stays invalid", schemas.PacketMeta{Dst: a("192.168.1.20")}, false, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.in
			ps.Anonymize(&p)
			check := func(field string, in, got netip.Addr, local bool) {
				want := in
				if local {
					want = cp.Anonymize(in)
				}
				if got != want {
					t.Errorf("%s: %s became %s, want %s", field, in, got, want)
				}
				if local && got == in {
					t.Errorf("%s: local %s left as is", field, in)
				}
			}
			check("src", tt.in.Src, p.Src, tt.srcLocal)
			check("dst", tt.in.Dst, p.Dst, tt.dstLocal)
			check("quoted src", tt.in.Quoted.Src, p.Quoted.Src, tt.qsrcLocal)
			check("quoted dst", tt.in.Quoted.Dst, p.Quoted.Dst, tt.qdstLocal)
		})
	}
}

// TestPseudonymizerKeepsFlowsTogether: both directions of a flow carry the
// same pseudonym, and two clients on one /24 keep sharing their /24.
func TestPseudonymizerKeepsFlowsTogether(t *testing.T) {
	ps := NewPseudonymizer(testKey, DefaultLocalNets())
	a := netip.MustParseAddr
	out := schemas.PacketMeta{Src: a("10.1.2.3"), Dst: a("203.0.113.5")}
	back := schemas.PacketMeta{Src: a("203.0.113.5"), Dst: a("10.1.2.3")}
	other := schemas.PacketMeta{Src: a("10.1.2.200"), Dst: a("203.0.113.5")}
	for _, p := range []*schemas.PacketMeta{&out, &back, &other} {
		ps.Anonymize(p)
	}
	if out.Src != back.Dst {
		t.Errorf("client is %s one way, %s the other", out.Src, back.Dst)
	}
	if x, y := out.Src.As4(), other.Src.As4(); [3]byte(x[:3]) != [3]byte(y[:3]) || x[3] == y[3] {
		t.Errorf("10.1.2.3 -> %s and 10.1.2.200 -> %s: /24 not preserved", out.Src, other.Src)
	}
	if st := ps.Stats(); st.Packets != 3 || st.Addrs != 3 {
		t.Errorf("stats %+v, want 3 packets, 3 addresses", st)
	}
}

func TestPseudonymizerNoAllocs(t *testing.T) {
	ps := NewPseudonymizer(testKey, DefaultLocalNets())
	p := schemas.PacketMeta{Src: netip.MustParseAddr("10.1.2.3"), Dst: netip.MustParseAddr("203.0.113.5")}
	if n := testing.AllocsPerRun(200, func() {
		q := p
		ps.Anonymize(&q)
	}); n != 0 {
		t.Errorf("Anonymize: %v allocations per packet", n)
	}
}

func BenchmarkPseudonymize(b *testing.B) {
	ps := NewPseudonymizer(testKey, DefaultLocalNets())
	pkts := []schemas.PacketMeta{
		{Src: netip.MustParseAddr("10.1.2.3"), Dst: netip.MustParseAddr("203.0.113.5")},
		{Src: netip.MustParseAddr("203.0.113.5"), Dst: netip.MustParseAddr("10.1.2.3")},
		{Src: netip.MustParseAddr("fd00::3"), Dst: netip.MustParseAddr("2001:db8::5")},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q := pkts[i%len(pkts)]
		ps.Anonymize(&q)
		i++
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, false},
		{" 10.1.2.3/8 ,fd00::/8", []string{"10.0.0.0/8", "fd00::/8"}, false},
		{"192.0.2.1,2001:db8::1", []string{"192.0.2.1/32", "2001:db8::1/128"}, false},
		{"10.0.0.0/33", nil, true},
		{"example.com", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefixes(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if strings.Join(s, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", s, tt.want)
			}
		})
	}
}

func TestLocalPrefixesIncludesHost(t *testing.T) {
	host, err := HostPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	mine := netip.MustParsePrefix("192.0.2.0/24")
	got, err := LocalPrefixes([]netip.Prefix{mine})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(host)+1 || got[len(got)-1] != mine {
		t.Errorf("LocalPrefixes = %v, want host addresses %v then %v", got, host, mine)
	}
	def, _ := LocalPrefixes(nil)
	if len(def) != len(host)+len(DefaultLocalNets()) {
		t.Errorf("LocalPrefixes(nil) = %v, want host addresses and the default nets", def)
	}
	for _, p := range host {
		if p.Addr().IsLoopback() || !p.IsSingleIP() {
			t.Errorf("host prefix %s: want single non-loopback addresses", p)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("created with mode %04o, want 0600", perm)
	}
	if k1 == (Key{}) {
		t.Error("created an all-zero key")
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || k2 != k1 {
		t.Fatalf("reload: %x, %v; want %x", k2, err, k1)
	}
	if k3, _ := LoadOrCreateKey(filepath.Join(dir, "other")); k3 == k1 {
		t.Error("two new key files hold the same key")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".key-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKey(path); !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("mode %04o: err = %v, want ErrKeyPermissions", mode, err)
		}
	}
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Error("a directory was accepted as a key file")
	}
}

func TestParseKey(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	hexKey := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	tests := []struct {
		name    string
		in      []byte
		want    byte // first byte
		wantErr bool
	}{
		{"hex", []byte(hexKey), 0x00, false},
		{"hex with newline", []byte(" " + strings.ToUpper(hexKey) + "\n"), 0x00, false},
		{"raw", raw, 0, false},
		{"raw that looks like hex is hex", []byte(hexKey[:32]), '0', false},
		{"short", []byte("abc"), 0, true},
		{"long hex", []byte(hexKey + "00"), 0, true},
		{"bad hex, not 32 bytes", []byte(strings.Replace(hexKey, "0", "x", 1)), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && k[0] != tt.want {
				t.Errorf("first byte %#x, want %#x", k[0], tt.want)
			}
		})
	}
	k, _ := ParseKey([]byte(hexKey))
	if k[31] != 0x1f {
		t.Errorf("hex key decodes to %x", k)
	}
}

func TestStripPayload(t *testing.T) {
	b := &schemas.PacketBatch{Arena: []byte("hello world")}
	b.Packets = []schemas.PacketMeta{
		{PayloadLen: 5, Payload: b.Arena[:5], Src: netip.MustParseAddr("10.0.0.1")},
		{PayloadLen: 900},
		{PayloadLen: 6, Payload: b.Arena[5:]},
	}
	StripPayload(b)
	for i, p := range b.Packets {
		if p.Payload != nil {
			t.Errorf("packet %d kept %q", i, p.Payload)
		}
	}
	if b.Packets[0].PayloadLen != 5 || b.Packets[1].PayloadLen != 900 || !b.Packets[0].Src.IsValid() {
		t.Errorf("extracted fields changed: %+v", b.Packets)
	}
	if len(b.Arena) != 0 {
		t.Errorf("arena still holds %d bytes", len(b.Arena))
	}
}
