package privacy

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/schemas"
)

// engineFeed publishes straight into an analyzer engine.
type engineFeed struct{ eng *analyzer.Engine }

func (e engineFeed) Publish(_ context.Context, b *schemas.PacketBatch) error { return e.eng.Process(b) }
func (e engineFeed) Close() error                                            { return nil }

type records struct {
	flows    []schemas.FlowRecord
	findings []schemas.Finding
}

func (r *records) Flow(f *schemas.FlowRecord) error { r.flows = append(r.flows, *f); return nil }
func (r *records) Finding(f *schemas.Finding) error { r.findings = append(r.findings, *f); return nil }

func analyze(t *testing.T, path string, a ingest.Anonymizer) *records {
	t.Helper()
	src, err := pcapfile.Open(path, pcapfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out records
	eng := analyzer.New(analyzer.Config{}, &out)
	if _, err := ingest.Run(context.Background(), src, engineFeed{eng}, ingest.Config{Anonymize: a}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestPseudonymizedCaptureSameFindings: a lab capture analyzed with its
// client network pseudonymized yields the same findings about the same
// servers and names, and no record carries a client address.
func TestPseudonymizedCaptureSameFindings(t *testing.T) {
	const capture = "../lab/testdata/sni-reset-seed1/capture.pcap"
	clients := netip.MustParsePrefix("198.18.0.0/16") // the lab's client side
	plain := analyze(t, capture, nil)
	ps := NewPseudonymizer(testKey, []netip.Prefix{clients})
	anon := analyze(t, capture, ps)

	if len(plain.findings) == 0 || len(anon.flows) != len(plain.flows) {
		t.Fatalf("%d flows, %d findings plain; %d flows pseudonymized", len(plain.flows), len(plain.findings), len(anon.flows))
	}
	type verdict struct{ kind, ip, name string }
	of := func(fs []schemas.Finding) []verdict {
		var v []verdict
		for _, f := range fs {
			v = append(v, verdict{f.Kind, f.TargetIP, f.TargetName})
		}
		slices.SortFunc(v, func(a, b verdict) int {
			if a.kind+a.ip+a.name < b.kind+b.ip+b.name {
				return -1
			}
			return 1
		})
		return v
	}
	if a, b := of(plain.findings), of(anon.findings); !slices.Equal(a, b) {
		t.Errorf("findings changed:\nplain %v\npseudonymized %v", a, b)
	}
	for _, f := range anon.flows {
		for _, s := range []string{f.ClientIP, f.ServerIP} {
			if a, err := netip.ParseAddr(s); err == nil && clients.Contains(a) {
				t.Fatalf("flow %s carries client-side address %s", f.FlowID, s)
			}
		}
	}
	if st := ps.Stats(); st.Addrs == 0 || st.Cache.Hits < 10*st.Cache.Misses {
		t.Errorf("stats %+v: want addresses replaced, mostly from the cache", st)
	}
}
