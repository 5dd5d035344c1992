package analyzer_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/schemas"
)

type batches []*schemas.PacketBatch

func (b *batches) Publish(_ context.Context, x *schemas.PacketBatch) error {
	*b = append(*b, x)
	return nil
}
func (b *batches) Close() error { return nil }

// analyze runs bs through one engine and returns what it wrote.
func analyze(t *testing.T, bs batches) *collect {
	t.Helper()
	out := &collect{}
	eng := analyzer.New(analyzer.Config{}, out)
	for _, b := range bs {
		if err := eng.Process(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVantagesJudgedApart: the lab's IP block seen from vantage "kz", and
// the same address answering vantage "nl" (the lab's neighbour address,
// which hosts the same names, moved onto it): the block is found, for "kz"
// only, and every flow record and finding names its vantage. Judged as
// one vantage, the answers to "nl" would hide the block.
func TestVantagesJudgedApart(t *testing.T) {
	const capture = "../lab/testdata/ip-drop-seed1/capture.pcap"
	blocked, neighbour := netip.MustParseAddr("198.19.18.193"), netip.MustParseAddr("198.19.18.155")
	client, client2 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	run := func(vantages bool) *collect {
		src, err := pcapfile.Open(capture, pcapfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var bs batches
		if _, err := ingest.Run(context.Background(), src, &bs, ingest.Config{}); err != nil {
			t.Fatal(err)
		}
		move := func(a *netip.Addr) {
			switch *a {
			case neighbour:
				*a = blocked
			case client:
				*a = client2
			}
		}
		for _, b := range bs {
			for i := range b.Packets {
				p := &b.Packets[i]
				p.Vantage = "kz"
				if p.Src == neighbour || p.Dst == neighbour || p.Quoted.Src == neighbour || p.Quoted.Dst == neighbour {
					p.Vantage = "nl"
					move(&p.Src)
					move(&p.Dst)
					move(&p.Quoted.Src)
					move(&p.Quoted.Dst)
				}
				if !vantages {
					p.Vantage = ""
				}
			}
		}
		return analyze(t, bs)
	}
	blocks := func(c *collect) (at []string) {
		for _, f := range c.findings {
			if f.Kind == schemas.KindIPBlocking && f.TargetIP == blocked.String() {
				at = append(at, f.Vantage)
			}
		}
		return at
	}

	if at := blocks(run(false)); len(at) != 0 {
		t.Fatalf("as one vantage, ip_blocking of %s found %v: the setup does not hide the block", blocked, at)
	}
	got := run(true)
	if at := blocks(got); len(at) != 1 || at[0] != "kz" {
		t.Errorf("ip_blocking of %s found for vantages %v, want [kz]", blocked, at)
	}
	okFromNL := 0
	for _, r := range got.flows {
		if r.Vantage != "kz" && r.Vantage != "nl" {
			t.Fatalf("flow %s has vantage %q", r.FlowID, r.Vantage)
		}
		if r.Vantage == "nl" && r.ServerIP == blocked.String() && r.Outcome == "ok" {
			okFromNL++
		}
	}
	if okFromNL == 0 {
		t.Errorf("no successful flow to %s from nl: nothing tested", blocked)
	}
	for _, f := range got.findings {
		if f.Vantage != "kz" && f.Vantage != "nl" {
			t.Errorf("%s finding on %s has vantage %q", f.Kind, f.TargetIP, f.Vantage)
		}
	}
}
