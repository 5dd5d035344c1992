package analyzer_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/schemas"
)

// TestPrepare: batches whose flow keys and ClientHellos a producer
// goroutine worked out (Engine.Prepare, while the engine processes the
// batches before) give the flows and findings of batches the engine works
// out itself. Two vantages alternate inside the batches, as the key of a
// flow includes its vantage's tag.
func TestPrepare(t *testing.T) {
	var bs batches
	for _, scenario := range []string{"ip-drop-seed1", "sni-reset-seed1", "gfw-inject-seed1", "benign-seed1"} {
		src, err := pcapfile.Open("../lab/testdata/"+scenario+"/capture.pcap", pcapfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ingest.Run(context.Background(), src, &bs, ingest.Config{BatchSize: 64})
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bs {
		for i := range b.Packets {
			if p := &b.Packets[i]; (p.SrcPort+p.DstPort)%2 == 0 {
				p.Vantage = "kz"
			}
		}
	}
	run := func(prepare bool) *collect {
		out := &collect{}
		eng := analyzer.New(analyzer.Config{}, out)
		ch := make(chan *schemas.PacketBatch, 4)
		go func() {
			defer close(ch)
			for _, b := range bs {
				if prepare {
					eng.Prepare(b)
				}
				ch <- b
			}
		}()
		for b := range ch {
			if err := eng.Process(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := run(false), run(true)
	named := 0
	for _, r := range want.flows {
		if r.SNI != "" {
			named++
		}
	}
	if len(want.flows) < 100 || named < 40 || len(want.findings) == 0 {
		t.Fatalf("%d flows, %d with an SNI, %d findings: too little to compare", len(want.flows), named, len(want.findings))
	}
	if d := cmp.Diff(want.flows, got.flows); d != "" {
		t.Errorf("flows differ when prepared (-unprepared +prepared):\n%s", d)
	}
	if d := cmp.Diff(want.findings, got.findings); d != "" {
		t.Errorf("findings differ when prepared (-unprepared +prepared):\n%s", d)
	}
}
