package tlshello

import (
	"bufio"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/internal/corpustest"
)

// ndpiFlow is one TLS flow line of an nDPI result file.
type ndpiFlow struct {
	a, b            netip.AddrPort
	ja4             string
	tls12           bool
	issuer, subject string
}

var (
	ndpiTuple = regexp.MustCompile(`^\s*\d+\s+TCP (\S+) <-> (\S+) `)
	ndpiField = regexp.MustCompile(`\[(JA4|Issuer|Subject): ([^\]]*)\]`)
)

func readNDPI(t *testing.T) map[string][]ndpiFlow {
	t.Helper()
	files, _ := filepath.Glob(corpustest.Path("ndpi/result/*.out"))
	out := map[string][]ndpiFlow{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			m := ndpiTuple.FindStringSubmatch(sc.Text())
			if m == nil || !strings.Contains(sc.Text(), "[JA4: ") {
				continue
			}
			a, err1 := netip.ParseAddrPort(m[1])
			b, err2 := netip.ParseAddrPort(m[2])
			if err1 != nil || err2 != nil {
				continue
			}
			fl := ndpiFlow{a: a, b: b, tls12: strings.Contains(sc.Text(), "[TLSv1.2]")}
			for _, fm := range ndpiField.FindAllStringSubmatch(sc.Text(), -1) {
				switch fm[1] {
				case "JA4":
					fl.ja4 = fm[2]
				case "Issuer":
					fl.issuer = fm[2]
				case "Subject":
					fl.subject = fm[2]
				}
			}
			pcap := strings.TrimSuffix(filepath.Base(f), ".out")
			out["ndpi/"+pcap] = append(out["ndpi/"+pcap], fl)
		}
		fh.Close()
	}
	return out
}

// sameJA4AsNDPI compares a JA4 with the one nDPI (2024-10) printed, minus
// three places where that nDPI departs from the JA4 specification: its
// SNI flag is always "d", its ALPN characters are not the first and last
// of the first protocol ("ht" for http/1.1 where the spec gives "h1"), and
// it hashes an empty extension list to sha256("") instead of writing
// twelve zeros.
func sameJA4AsNDPI(ours, ndpi string) bool {
	if len(ours) != 36 || len(ndpi) != 36 {
		return false
	}
	const emptySHA = "e3b0c44298fc"
	if ndpi[24:] == emptySHA && ours[24:] == "000000000000" {
		ndpi = ndpi[:24] + ours[24:]
	}
	return ours[:3] == ndpi[:3] && ours[4:8] == ndpi[4:8] && ours[10:] == ndpi[10:]
}

// TestNDPIJA4 compares the JA4 of every TCP flow in the corpus that nDPI
// fingerprinted with nDPI's own value, an implementation independent of
// this one.
func TestNDPIJA4(t *testing.T) {
	corpustest.Require(t)
	cache := corpustest.SegmentCache{}
	compared := 0
	flows := readNDPI(t)
	for _, file := range slices.Sorted(maps.Keys(flows)) {
		if _, err := os.Stat(corpustest.Path(file)); err != nil {
			continue
		}
		for _, fl := range flows[file] {
			t.Run(file+"/"+fl.a.String(), func(t *testing.T) {
				segs := cache.Get(t, file)
				stream := corpustest.StreamAt(segs, fl.a, fl.b, 0, LooksLikeClientHello)
				if stream == nil {
					stream = corpustest.StreamAt(segs, fl.b, fl.a, 0, LooksLikeClientHello)
				}
				h, err := ParseClientHello(stream)
				if err != nil {
					t.Skipf("no parsable ClientHello in the capture (%v)", err)
				}
				compared++
				if !sameJA4AsNDPI(h.JA4, fl.ja4) {
					t.Errorf("JA4 = %s, nDPI says %s", h.JA4, fl.ja4)
				}
			})
		}
	}
	if compared < 50 {
		t.Errorf("compared only %d JA4 values", compared)
	}
}
