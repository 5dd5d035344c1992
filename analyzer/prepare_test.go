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

// TestPrepare: batches whose flow keys a producer goroutine worked out
// (Engine.Prepare, while the engine processes the batches before) give the
// flows and findings of batches the engine keys itself. Two vantages
// alternate inside the batches, as the key of a flow includes its
// vantage's tag.
func TestPrepare(t *testing.T) {
	src, err := pcapfile.Open("../lab/testdata/ip-drop-seed1/capture.pcap", pcapfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var bs batches
	if _, err := ingest.Run(context.Background(), src, &bs, ingest.Config{BatchSize: 64}); err != nil {
		t.Fatal(err)
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
	if len(want.flows) < 50 || len(want.findings) == 0 {
		t.Fatalf("%d flows, %d findings: too little to compare", len(want.flows), len(want.findings))
	}
	if d := cmp.Diff(want.flows, got.flows); d != "" {
		t.Errorf("flows differ when prepared (-unprepared +prepared):\n%s", d)
	}
	if d := cmp.Diff(want.findings, got.findings); d != "" {
		t.Errorf("findings differ when prepared (-unprepared +prepared):\n%s", d)
	}
}
