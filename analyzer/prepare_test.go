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

// chanPub hands batches to the engine's goroutine, calling prepare (when
// set) first, as replay's pipe does.
type chanPub struct {
	ch      chan *schemas.PacketBatch
	prepare func(*schemas.PacketBatch)
}

func (c chanPub) Publish(_ context.Context, b *schemas.PacketBatch) error {
	if c.prepare != nil {
		c.prepare(b)
	}
	c.ch <- b
	return nil
}
func (c chanPub) Close() error { return nil }

// twoVantages puts every other connection at vantage "kz": the key of a
// flow includes its vantage's tag, and a batch then changes vantage often.
type twoVantages struct{}

func (twoVantages) Anonymize(p *schemas.PacketMeta) {
	if (p.SrcPort+p.DstPort)%2 == 0 {
		p.Vantage = "kz"
	}
}

// TestPrepare: batches whose flow keys and ClientHellos the producer's
// goroutine worked out, packet by packet as ingest decodes them
// (ingest.Preparer) or batch by batch (Engine.Prepare), while the engine
// processes earlier batches, give the flows and findings of batches the
// engine works out itself; also when the producer runs so far ahead that
// the engine stops preparing ("ahead": every batch is made before the
// first is processed).
func TestPrepare(t *testing.T) {
	run := func(mode string) *collect {
		out := &collect{}
		eng := analyzer.New(analyzer.Config{}, out)
		pub := chanPub{ch: make(chan *schemas.PacketBatch, 4)}
		if mode == "ahead" {
			pub.ch = make(chan *schemas.PacketBatch, 1<<16)
		}
		cfg := ingest.Config{BatchSize: 64, Anonymize: twoVantages{}}
		switch mode {
		case "packet":
			cfg.Prepare = eng
		case "ahead":
			cfg.Prepare, cfg.BatchSize = eng, 16
		case "batch":
			pub.prepare = eng.Prepare
		}
		errc := make(chan error, 1)
		produced := make(chan struct{})
		go func() {
			defer close(produced)
			defer close(pub.ch)
			for _, scenario := range []string{"ip-drop-seed1", "sni-reset-seed1", "gfw-inject-seed1", "benign-seed1"} {
				src, err := pcapfile.Open("../lab/testdata/"+scenario+"/capture.pcap", pcapfile.Options{})
				if err != nil {
					errc <- err
					return
				}
				_, err = ingest.Run(context.Background(), src, pub, cfg)
				src.Close()
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		if mode == "ahead" {
			<-produced
			if n := len(pub.ch); n < 80 {
				t.Fatalf("ahead: %d batches, not enough to run the engine out of room", n)
			}
		}
		for b := range pub.ch {
			if err := eng.Process(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := run("none")
	named := 0
	for _, r := range want.flows {
		if r.SNI != "" {
			named++
		}
	}
	if len(want.flows) < 100 || named < 40 || len(want.findings) == 0 {
		t.Fatalf("%d flows, %d with an SNI, %d findings: too little to compare", len(want.flows), named, len(want.findings))
	}
	for _, mode := range []string{"packet", "batch", "ahead"} {
		got := run(mode)
		if d := cmp.Diff(want.flows, got.flows); d != "" {
			t.Errorf("%s: flows differ when prepared (-unprepared +prepared):\n%s", mode, d)
		}
		if d := cmp.Diff(want.findings, got.findings); d != "" {
			t.Errorf("%s: findings differ when prepared (-unprepared +prepared):\n%s", mode, d)
		}
	}
}
