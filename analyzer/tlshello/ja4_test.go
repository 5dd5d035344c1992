package tlshello

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// randomHello builds a ClientHello from random draws of ciphers,
// extensions and signature algorithms, GREASE values included, in random
// order, with SNI and ALPN present or not. The pools are small, so many
// hellos differ from another in one list only.
func randomHello(r *rand.Rand) []byte {
	pick := func(pool []uint16) []uint16 {
		var out []uint16
		for _, v := range pool {
			if r.IntN(2) == 0 {
				out = append(out, v)
			}
		}
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	suites := pick([]uint16{0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f})
	if len(suites) == 0 {
		suites = []uint16{0x1301}
	}
	var exts []ext
	for _, typ := range pick([]uint16{0x2a2a, extServerName, extALPN, extSignatureAlgorithms, 0x0017, 0x002d, 0xff01}) {
		switch typ {
		case extServerName:
			exts = append(exts, sniExt("random.example"))
		case extALPN:
			exts = append(exts, alpnExt([]string{"h2", "http/1.1", "h3"}[r.IntN(3)]))
		case extSignatureAlgorithms:
			exts = append(exts, ext{typ, vec16(u16s(pick([]uint16{0x0403, 0x0804, 0x0401, 0x0503, 0x1a1a})...))})
		default:
			exts = append(exts, ext{typ, nil})
		}
	}
	return records(buildHandshake(0x0303, suites, exts), 1<<14)
}

// TestJA4Memo checks that the fingerprints recalled from the memo are the
// ones computed afresh: for thousands of different hellos, more than the
// memo's slots, parsed again and again by several goroutines in different
// orders, so that entries are recalled, replaced and raced for.
func TestJA4Memo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	hellos := make([][]byte, 3*len(ja4Memo))
	want := make([]string, len(hellos))
	distinct := map[string]bool{}
	for i := range hellos {
		hellos[i] = randomHello(r)
		for j := range ja4Memo {
			ja4Memo[j].Store(nil)
		}
		h, err := ParseClientHello(hellos[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = h.JA4
		distinct[h.JA4] = true
	}
	if len(distinct) <= len(ja4Memo) {
		t.Fatalf("only %d distinct fingerprints in %d hellos: the test would not replace entries", len(distinct), len(hellos))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			order := rand.New(rand.NewPCG(uint64(g), 7)).Perm(len(hellos))
			for range 3 {
				for _, i := range order {
					h, err := ParseClientHello(hellos[i])
					if err != nil {
						t.Error(err)
						return
					}
					if h.JA4 != want[i] {
						t.Errorf("hello %d: JA4 %s from the memo, %s computed afresh", i, h.JA4, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestJA4ExtensionOrder: a client that shuffles its extensions on every
// connection, as Chrome does, keeps one fingerprint, and a hello one
// cipher apart does not take it from the memo.
func TestJA4ExtensionOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var first string
	for range 20 {
		exts := []ext{sniExt("a.example"), alpnExt("h2"), {extSignatureAlgorithms, vec16(u16s(0x0403, 0x0804))}, {0x0017, nil}, {0x002d, nil}, {0xff01, nil}}
		r.Shuffle(len(exts), func(i, j int) { exts[i], exts[j] = exts[j], exts[i] })
		a, err := ParseClientHello(records(buildHandshake(0x0303, []uint16{0x1301, 0x1302, 0x1303}, exts), 1<<14))
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseClientHello(records(buildHandshake(0x0303, []uint16{0x1301, 0x1302, 0xc02b}, exts), 1<<14))
		if err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = a.JA4
		}
		if a.JA4 != first {
			t.Fatalf("shuffled extensions: JA4 %s, first %s", a.JA4, first)
		}
		// t12d0306h2_<ciphers>_<extensions>: only the cipher hash differs.
		if a.JA4[:11] != b.JA4[:11] || a.JA4[11:23] == b.JA4[11:23] || a.JA4[23:] != b.JA4[23:] {
			t.Fatalf("one cipher apart: %s and %s", a.JA4, b.JA4)
		}
	}
}
