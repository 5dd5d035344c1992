package analyzer_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/internal/corpustest"
	"github.com/tamperscope/tamperscope/schemas"
)

// TestRealCensorshipCaptures replays the real censorship captures of the
// corpus and checks each gives the finding its README (MANIFEST.tsv)
// describes, with the right trigger, method and evidence.
func TestRealCensorshipCaptures(t *testing.T) {
	type want struct {
		kind, ip, name, trigger, method string
		port                            uint16
		evidence                        []string // substrings of Finding.Evidence
		verdicts                        []string // acceptable verdicts
	}
	confirmed := []string{"confirmed"}
	cases := []struct {
		file string
		why  string
		want []want
		none bool // no finding at all
	}{
		{
			file: "censorship-tripwire/testdata/tripwire-1597963966.pcap",
			why:  "GFW, server side: forged RST+ACK triplets 'from the client' (TTL 52-229 vs 50, random IP ID) on SNI www.wikipedia.org (also TLS sent to port 80) and on Host youporn.com; residual resets before the handshake completes; ESNI ClientHellos blackholed",
			want: []want{
				{kind: schemas.KindSNIRSTInjection, ip: "104.17.210.9", port: 443, name: "www.wikipedia.org", trigger: "sni", method: "rst", evidence: []string{"ttl_delta", "ipid_jump"}, verdicts: confirmed},
				{kind: schemas.KindSNIRSTInjection, ip: "104.17.210.9", port: 80, name: "www.wikipedia.org", trigger: "sni", method: "rst", evidence: []string{"ttl_delta"}, verdicts: confirmed},
				{kind: schemas.KindSNIRSTInjection, ip: "104.17.210.9", port: 80, name: "youporn.com", trigger: "http_host", method: "rst", evidence: []string{"ttl_delta"}, verdicts: confirmed},
				{kind: schemas.KindResidualBlock, ip: "104.17.210.9", port: 80, name: "www.wikipedia.org", method: "rst", verdicts: confirmed},
				{kind: schemas.KindSNIBlackhole, ip: "104.17.210.9", port: 443, trigger: "esni", method: "drop", evidence: []string{"ESNI"}, verdicts: []string{"confirmed", "likely"}},
			},
		},
		{
			file: "censorship-tripwire/testdata/airtel_example.pcap",
			why:  "Airtel, server side: an injected RST+ACK 'from the client' (seq 1, TTL 49 vs 44, IP ID 0x00f2) after each GET for Host youporn.com; the real client keeps ACKing",
			want: []want{{kind: schemas.KindSNIRSTInjection, ip: "10.10.10.10", port: 80, name: "youporn.com", trigger: "http_host", method: "rst", evidence: []string{"race", "seq_bad", "ttl_delta"}, verdicts: confirmed}},
		},
		{
			file: "censorship-tripwire/testdata/airtel_https_example.pcap",
			why:  "Airtel: a TLS ClientHello with SNI youporn.com sent to port 80 draws the same injected RST+ACK, sometimes before the client's handshake ACK",
			want: []want{{kind: schemas.KindSNIRSTInjection, ip: "10.10.10.10", port: 80, name: "youporn.com", trigger: "sni", method: "rst", evidence: []string{"ttl_delta"}, verdicts: confirmed}},
		},
		{
			file: "censorship-tripwire/other/pcaps/server_side_http_luke.pcap",
			why:  "GFW type-1/type-2 pattern after GET /?q=ultrasurf: three RST+ACK then two RSTs, foreign TTLs",
			want: []want{{kind: schemas.KindSNIRSTInjection, ip: "172.172.172.172", port: 9999, name: "18.188.18.18:9999", trigger: "http_host", method: "rst", evidence: []string{"burst", "ttl_delta"}, verdicts: confirmed}},
		},
		{
			file: "censorship-tripwire/testdata/full_http_request.pcap",
			why:  "control: a complete HTTP exchange over loopback",
			none: true,
		},
		{
			file: "gfw-quic-sni/experiments/availability-attack/pcap/quic_victim_client_anon.pcap",
			why:  "GFW QUIC SNI: 42 Initials naming http3check.net, none answered (residual UDP blocking); no other name reaches the address, so no same-address control: likely, not confirmed",
			want: []want{{kind: schemas.KindQUICBlocking, ip: "43.143.0.0", port: 443, name: "http3check.net", trigger: "quic_sni", method: "drop", verdicts: []string{"likely"}}},
		},
		{
			file: "gfw-quic-sni/experiments/availability-attack/pcap/quic_server_anon.pcap",
			why:  "the same experiment seen by the server: the Initials that got through, unanswered",
			want: []want{{kind: schemas.KindQUICBlocking, ip: "172.21.0.0", port: 443, name: "http3check.net", trigger: "quic_sni", method: "drop", verdicts: []string{"likely"}}},
		},
		{
			file: "gfw-quic-sni/experiments/flow-tracking-time/flow-tracking-time.pcap",
			why:  "server side, two 4-tuples with a handful of unanswered Initials each: too little to call (the flow records say timeout)",
			none: true,
		},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			res, _, err := replayFile(t, corpustest.Path(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if tc.none {
				for _, f := range res.findings {
					t.Errorf("%s: unexpected %s %s %q: %s", tc.why, f.Kind, f.TargetIP, f.TargetName, f.Evidence)
				}
				return
			}
			for _, w := range tc.want {
				var got *schemas.Finding
				for i := range res.findings {
					f := &res.findings[i]
					if f.Kind == w.kind && f.TargetIP == w.ip && f.TargetPort == w.port && f.TargetName == w.name {
						got = f
						break
					}
				}
				if got == nil {
					t.Errorf("%s: no %s for %s:%d %q", tc.why, w.kind, w.ip, w.port, w.name)
					continue
				}
				if w.trigger != "" && got.Trigger != w.trigger {
					t.Errorf("%s %q: trigger %s, want %s", w.kind, w.name, got.Trigger, w.trigger)
				}
				if got.Method != w.method {
					t.Errorf("%s %q: method %s, want %s", w.kind, w.name, got.Method, w.method)
				}
				for _, e := range w.evidence {
					if !strings.Contains(got.Evidence, e) {
						t.Errorf("%s %q: evidence %q lacks %s", w.kind, w.name, got.Evidence, e)
					}
				}
				ok := false
				for _, v := range w.verdicts {
					ok = ok || got.Verdict == v
				}
				if !ok {
					t.Errorf("%s %q: verdict %s, want one of %v", w.kind, w.name, got.Verdict, w.verdicts)
				}
			}
		})
	}
}
