package quic

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/tamperscope/tamperscope/internal/corpustest"
)

// helloRow is one ClientHello tshark found in a QUIC Initial.
type helloRow struct {
	file     string
	frame    int
	tuple    string
	sni      string
	versions []string // hex as tshark prints them, "0x00000001"
	isolated bool     // from EXPECTED_ISOLATED.tsv: the frame alone holds it
}

func loadRows(t *testing.T) []helloRow {
	t.Helper()
	var rows []helloRow
	for _, src := range []struct {
		name     string
		isolated bool
	}{{"EXPECTED.tsv", false}, {"EXPECTED_ISOLATED.tsv", true}} {
		for _, row := range corpustest.ReadTSV(t, src.name) {
			if row["transport"] != "quic" {
				continue
			}
			rows = append(rows, helloRow{
				file:     row["file"],
				frame:    corpustest.Atoi(t, row["frame"]),
				tuple:    fmt.Sprintf("%s:%s>%s:%s", row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"]),
				sni:      row["sni"],
				versions: strings.Split(row["quic_version"], ","),
				isolated: src.isolated,
			})
		}
	}
	return rows
}

// datagram is one UDP payload of a capture, with tshark's 1-based number.
type datagram struct {
	frame   int
	tuple   string
	payload []byte
}

// readDatagrams returns the UDP payloads of a pcap or pcapng file, with
// the innermost addresses and ports, as tshark reports them.
func readDatagrams(t *testing.T, path string) []datagram {
	t.Helper()
	c, err := corpustest.OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []datagram
	for frame := 1; ; frame++ {
		data, ci, err := c.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s frame %d: %v", path, frame, err)
		}
		pkt := gopacket.NewPacket(data, c.LinkType(ci), gopacket.NoCopy)
		var src, dst string
		var udp *layers.UDP
		for _, l := range pkt.Layers() {
			switch l := l.(type) {
			case *layers.IPv4:
				src, dst = l.SrcIP.String(), l.DstIP.String()
			case *layers.IPv6:
				src, dst = l.SrcIP.String(), l.DstIP.String()
			case *layers.UDP:
				udp = l
			}
		}
		if udp == nil {
			continue
		}
		out = append(out, datagram{
			frame:   frame,
			tuple:   fmt.Sprintf("%s:%d>%s:%d", src, udp.SrcPort, dst, udp.DstPort),
			payload: udp.Payload,
		})
	}
}

// helloAt is what the per-connection assembly knows after one frame.
type helloAt struct {
	version  uint32
	hello    []byte // nil until a ClientHello is complete
	complete int    // frame at which the latest ClientHello became complete
}

// assembleFile feeds every client datagram of a capture, in capture
// order, to one Flow per 5-tuple, and records the state after each frame
// that carried an Initial.
func assembleFile(datagrams []datagram) map[int]helloAt {
	type conn struct {
		f        Flow
		key      string
		complete int
		helloOff int
	}
	conns := map[string]*conn{}
	states := map[int]helloAt{}
	var d Decoder
	for _, dg := range datagrams {
		c := conns[dg.tuple]
		if c == nil {
			c = &conn{}
			conns[dg.tuple] = c
		}
		in, err := c.f.Add(&d, dg.payload)
		if errors.Is(err, ErrCryptoLimit) || err != nil && in.Packets == 0 {
			continue
		}
		if key := string(c.f.KeyDCID()); key != c.key {
			c.key, c.complete, c.helloOff = key, 0, -1
		}
		off, hello, _ := c.f.lastMessage(handshakeClientHello, DefaultLimit)
		ok := hello != nil
		if ok && off != c.helloOff {
			c.complete, c.helloOff = dg.frame, off
		}
		st := helloAt{version: in.Version, complete: c.complete}
		if ok {
			st.hello = hello
		}
		states[dg.frame] = st
	}
	return states
}

// TestCorpusClientHellos checks every QUIC ClientHello tshark found in the
// shared corpus: the connection's Initials up to that frame, decrypted and
// reassembled, hold a complete ClientHello with tshark's SNI and version.
// For the whole-file rows the ClientHello must also become complete at
// exactly tshark's frame; for the isolated rows the frame must hold it on
// its own.
func TestCorpusClientHellos(t *testing.T) {
	corpustest.Require(t)
	rows := loadRows(t)
	byFile := map[string][]helloRow{}
	var files []string
	for _, r := range rows {
		if byFile[r.file] == nil {
			files = append(files, r.file)
		}
		byFile[r.file] = append(byFile[r.file], r)
	}
	passed := 0
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			datagrams := readDatagrams(t, corpustest.Path(file))
			byFrame := map[int]datagram{}
			for _, dg := range datagrams {
				byFrame[dg.frame] = dg
			}
			states := assembleFile(datagrams)
			for _, row := range byFile[file] {
				if err := checkRow(row, byFrame, states); err != nil {
					t.Errorf("frame %d (%s, isolated=%v): %v", row.frame, row.tuple, row.isolated, err)
					continue
				}
				passed++
			}
		})
	}
	t.Logf("%d of %d QUIC ClientHello rows pass", passed, len(rows))
}

func checkRow(row helloRow, byFrame map[int]datagram, states map[int]helloAt) error {
	dg, ok := byFrame[row.frame]
	if !ok {
		return errors.New("frame has no UDP datagram")
	}
	if dg.tuple != row.tuple {
		return fmt.Errorf("frame tuple %s, tshark says %s", dg.tuple, row.tuple)
	}
	st, ok := states[row.frame]
	if !ok {
		_, err := ParseInitial(dg.payload)
		return fmt.Errorf("no client Initial decoded: %v", err)
	}
	if !versionListed(st.version, row.versions) {
		return fmt.Errorf("version %#08x, tshark says %v", st.version, row.versions)
	}
	hello := st.hello
	if row.isolated {
		in, err := ParseInitial(dg.payload)
		if err != nil {
			return err
		}
		var a Assembler
		if err := a.AddInitial(&in); err != nil {
			return err
		}
		if hello, ok = a.ClientHello(); !ok {
			return errors.New("frame alone holds no complete ClientHello")
		}
	} else if st.complete != row.frame {
		return fmt.Errorf("ClientHello complete at frame %d, tshark says %d", st.complete, row.frame)
	}
	if hello == nil {
		return errors.New("no complete ClientHello")
	}
	sni, err := sniOf(hello)
	switch {
	case row.sni == "" && errors.Is(err, errNoSNI):
		return nil
	case err != nil:
		return fmt.Errorf("parse ClientHello: %v", err)
	case sni != row.sni:
		return fmt.Errorf("sni %q, tshark says %q", sni, row.sni)
	}
	return nil
}

func versionListed(v uint32, listed []string) bool {
	for _, s := range listed {
		if s == fmt.Sprintf("0x%08x", v) {
			return true
		}
	}
	return false
}

// Server Initials decrypt with the server keys of the client's key DCID.
// tshark shows a ServerHello (the first a HelloRetryRequest) in frames 4
// and 6 of ndpi/quic-29.pcap.
func TestCorpusServerHello(t *testing.T) {
	corpustest.Require(t)
	datagrams := readDatagrams(t, corpustest.Path("ndpi/quic-29.pcap"))
	const client = "10.9.0.1:36588>10.9.0.2:443"
	var f Flow
	var d Decoder
	var server Assembler
	found := map[int]bool{}
	lastOff := -1
	for _, dg := range datagrams {
		if dg.tuple == client {
			f.Add(&d, dg.payload) // later datagrams hold no Initial
			continue
		}
		in, err := d.Decode(dg.payload, Server, f.KeyDCID())
		if err != nil {
			continue
		}
		if err := server.AddInitial(&in); err != nil {
			t.Fatal(err)
		}
		if off, msg, _ := server.lastMessage(handshakeServerHello, DefaultLimit); msg != nil && off != lastOff {
			found[dg.frame], lastOff = true, off
		}
	}
	if !found[4] || !found[6] {
		t.Errorf("ServerHello found in frames %v, want 4 and 6", found)
	}
}
