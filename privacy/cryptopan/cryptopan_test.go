package cryptopan

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// referenceKey is the key of the sample shipped with the reference
// Crypto-PAn distribution (sample_trace_raw.txt / sample_trace_sanitized.txt).
var referenceKey = [KeySize]byte{21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2}

// TestReferenceVectors checks address pairs of the reference sample trace,
// the IPv6 vectors other implementations of the 128-bit construction agree
// on, and the pair that the Python and Julia ports check for the ASCII key
// of their examples.
func TestReferenceVectors(t *testing.T) {
	var asciiKey [KeySize]byte
	copy(asciiKey[:], "boojahyoo3vaeToong0Eijee7Ahz3yee")
	tests := []struct {
		name string
		key  [KeySize]byte
		in   []string
		want []string
	}{
		{"sample trace", referenceKey,
			[]string{"128.11.68.132", "129.118.74.4", "130.132.252.244", "141.223.7.43", "141.233.145.108", "152.163.225.39", "156.29.3.236", "165.247.96.84", "166.107.77.190", "192.102.249.13", "192.215.32.125", "192.233.80.103", "192.41.57.43", "193.150.244.223", "195.205.63.100", "198.200.171.101", "198.26.132.101", "198.36.213.5", "198.51.77.238", "199.217.79.101", "202.49.198.20", "203.12.160.252", "204.184.162.189", "204.202.136.230", "204.29.20.4", "205.178.38.67", "205.188.147.153", "205.188.248.25", "205.245.121.43", "207.105.49.5", "207.135.65.238", "207.155.9.214", "207.188.7.45", "207.25.71.27", "207.33.151.131", "208.147.89.59", "208.234.120.210", "208.28.185.184", "208.52.56.122", "209.12.231.7", "209.238.72.3", "209.246.74.109", "209.68.60.238", "209.85.249.6", "212.120.124.31", "212.146.8.236", "212.186.227.154", "212.204.172.118", "212.206.130.201", "216.148.237.145", "216.157.30.252", "216.184.159.48", "216.227.10.221", "216.254.18.172", "216.32.132.250", "216.35.217.178", "24.0.250.221", "24.13.62.231", "24.14.213.138", "24.5.0.80", "24.7.198.88", "24.94.26.44", "38.15.67.68", "4.3.88.225", "63.14.55.111", "63.195.241.44", "63.97.7.140", "64.14.118.196", "64.34.154.117", "64.39.15.238", "10.185.25.118"},
			[]string{"135.242.180.132", "134.136.186.123", "133.68.164.234", "141.167.8.160", "141.129.237.235", "151.140.114.167", "147.225.12.42", "162.9.99.234", "160.132.178.185", "252.138.62.131", "252.43.47.189", "252.25.108.8", "252.222.221.184", "253.169.52.216", "255.186.223.5", "249.199.68.213", "249.36.123.202", "249.7.21.132", "249.18.186.254", "248.38.184.213", "245.206.7.234", "244.248.163.4", "243.192.77.90", "243.178.4.198", "243.33.20.123", "242.108.198.51", "242.96.16.101", "242.96.88.27", "242.21.121.163", "241.118.205.138", "241.202.129.222", "241.220.250.22", "241.255.249.220", "241.33.119.156", "241.1.233.131", "227.237.98.191", "227.154.67.17", "227.39.94.90", "227.8.63.165", "226.243.167.8", "226.6.119.243", "226.22.124.76", "226.184.220.233", "226.170.70.6", "228.135.163.231", "228.19.4.234", "228.59.98.98", "228.71.195.169", "228.69.242.193", "235.84.194.111", "235.89.31.26", "235.96.225.78", "235.28.253.36", "235.7.16.162", "235.192.139.38", "235.195.157.81", "100.15.198.226", "100.2.192.247", "100.1.42.141", "100.9.15.210", "100.10.6.25", "100.88.228.35", "64.3.66.187", "124.60.155.63", "95.9.215.7", "95.179.238.44", "95.97.9.123", "0.255.183.58", "0.221.154.117", "0.219.7.41", "117.161.29.118"}},
		{"ipv6", referenceKey,
			[]string{"::1", "::2", "::ffff", "2001:db8::1", "2001:db8::2"},
			[]string{"78ff:f001:9fc0:20df:8380:b1f1:704:ed", "78ff:f001:9fc0:20df:8380:b1f1:704:ef", "78ff:f001:9fc0:20df:8380:b1f1:704:f838", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"}},
		{"ascii key", asciiKey, []string{"192.0.2.1"}, []string{"206.2.124.120"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.in) != len(tt.want) {
				t.Fatalf("%d inputs, %d outputs", len(tt.in), len(tt.want))
			}
			a := New(tt.key)
			for pass := range 2 { // the second pass answers from the cache
				for i, s := range tt.in {
					got := a.Anonymize(netip.MustParseAddr(s))
					if want := netip.MustParseAddr(tt.want[i]); got != want {
						t.Errorf("pass %d: Anonymize(%s) = %s, want %s", pass, s, got, want)
					}
				}
			}
		})
	}
}

func commonPrefix(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			return n + bits.LeadingZeros8(d)
		}
		n += 8
	}
	return n
}

// randomPair returns two addresses of the same family sharing a prefix of
// random length, so every prefix length is exercised, not only the ~0 bits
// two random addresses share.
func randomPair(r *rand.Rand, v6 bool) (netip.Addr, netip.Addr) {
	var x, y [16]byte
	for i := range x {
		x[i] = byte(r.Uint32())
	}
	y = x
	nbits := 32
	if v6 {
		nbits = 128
	}
	k := r.IntN(nbits + 1)
	if k < nbits {
		off := 16 - nbits/8 + k/8 // byte of the first differing bit
		y[off] ^= 0x80 >> (k % 8)
		for i := off*8 + k%8 + 1; i < 128; i++ {
			if r.IntN(2) == 0 {
				y[i/8] ^= 0x80 >> (i % 8)
			}
		}
	}
	if !v6 {
		return netip.AddrFrom4([4]byte(x[12:])), netip.AddrFrom4([4]byte(y[12:]))
	}
	return netip.AddrFrom16(x), netip.AddrFrom16(y)
}

func TestPrefixPreserving(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a := New(referenceKey)
	for _, v6 := range []bool{false, true} {
		for range 3000 {
			x, y := randomPair(r, v6)
			ax, ay := a.Anonymize(x), a.Anonymize(y)
			if ax.Is4() != x.Is4() {
				t.Fatalf("Anonymize(%s) = %s changes the family", x, ax)
			}
			if got, want := commonPrefix(ax, ay), commonPrefix(x, y); got != want {
				t.Fatalf("%s, %s share %d bits; pseudonyms %s, %s share %d", x, y, want, ax, ay, got)
			}
		}
	}
}

// TestBijective: no two distinct inputs of a sample collide, and a dense
// block (a /16) maps onto a /16.
func TestBijective(t *testing.T) {
	a := New(referenceKey)
	seen := make(map[netip.Addr]netip.Addr, 1<<16)
	for i := range 1 << 16 {
		in := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		out := a.Anonymize(in)
		if prev, dup := seen[out]; dup {
			t.Fatalf("%s and %s both map to %s", prev, in, out)
		}
		seen[out] = in
	}
	r := rand.New(rand.NewPCG(3, 4))
	seen6 := map[netip.Addr]netip.Addr{}
	for range 5000 {
		x, _ := randomPair(r, true)
		out := a.Anonymize(x)
		if prev, dup := seen6[out]; dup && prev != x {
			t.Fatalf("%s and %s both map to %s", prev, x, out)
		}
		seen6[out] = x
	}
}

func TestKeyMatters(t *testing.T) {
	other := referenceKey
	other[31] ^= 1 // the pad alone changes every mapping
	in := netip.MustParseAddr("192.168.1.20")
	if New(referenceKey).Anonymize(in) == New(other).Anonymize(in) {
		t.Errorf("keys differing in the pad map %s alike", in)
	}
}

func TestForms(t *testing.T) {
	a := New(referenceKey)
	v4 := netip.MustParseAddr("128.11.68.132")
	mapped := a.Anonymize(netip.AddrFrom16(v4.As16()))
	if !mapped.Is4In6() || mapped.Unmap() != a.Anonymize(v4) {
		t.Errorf("IPv4-mapped %s -> %s, want the mapped form of %s", netip.AddrFrom16(v4.As16()), mapped, a.Anonymize(v4))
	}
	zoned := netip.MustParseAddr("fe80::1%eth0")
	if got := a.Anonymize(zoned); got.Zone() != "eth0" || got.WithZone("") != a.Anonymize(zoned.WithZone("")) {
		t.Errorf("Anonymize(%s) = %s", zoned, got)
	}
	if got := a.Anonymize(netip.Addr{}); got.IsValid() {
		t.Errorf("Anonymize(invalid) = %s", got)
	}
}

func TestCloneAgrees(t *testing.T) {
	a := New(referenceKey)
	b := a.Clone()
	for _, s := range []string{"10.0.0.1", "2001:db8::7"} {
		in := netip.MustParseAddr(s)
		if a.Anonymize(in) != b.Anonymize(in) {
			t.Errorf("clone maps %s differently", s)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	a := New(referenceKey)
	v4, v6 := netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("fd00::20")
	if n := testing.AllocsPerRun(100, func() { a.Anonymize(v4); a.Anonymize(v6) }); n != 0 {
		t.Errorf("cached Anonymize: %v allocations per run", n)
	}
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		i++
		a.Anonymize(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}))
		a.Anonymize(netip.AddrFrom16([16]byte{0: 0xfd, 14: byte(i >> 8), 15: byte(i)}))
	}); n != 0 {
		t.Errorf("uncached Anonymize: %v allocations per run", n)
	}
}

func BenchmarkAnonymize(b *testing.B) {
	for _, bc := range []struct {
		name string
		addr func(i int) netip.Addr
	}{
		{"v4-cached", func(int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 1, 20}) }},
		{"v6-cached", func(int) netip.Addr { return netip.AddrFrom16([16]byte{0: 0xfd, 15: 0x20}) }},
		{"v4-miss", func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }},
		{"v6-miss", func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0: 0xfd, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := New(referenceKey)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				a.Anonymize(bc.addr(i))
			}
		})
	}
}
