package ebpf

import (
	"context"
	"testing"
	"unsafe"

	"github.com/tamperscope/tamperscope/bpf"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport/inproc"
)

// superRecord is a TCP super-packet as TC egress sees it: 3000 payload
// bytes in segments of 1448, IPv4, 12 bytes of options.
func superRecord(flags uint8, snap int) []byte {
	raw := make([]byte, bpf.RecordSize+bpf.SnapMax)
	r := (*bpf.Record)(unsafe.Pointer(&raw[0]))
	r.IpVersion, r.Proto, r.Ttl = 4, schemas.ProtoTCP, 64
	r.Saddr = [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 18, 15: 1}
	r.Daddr = [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 18, 15: 2}
	r.Sport, r.Dport = 443, 40000
	r.L3Off, r.L4Off, r.L4Hlen = 14, 34, 32
	r.PayloadLen = 3000
	r.IpLen = 20 + 32 + 3000
	r.WireLen = 14 + uint32(r.IpLen)
	r.IpId = 0xfffe
	r.Seq = 1000
	r.TcpFlags = flags
	r.GsoSegs, r.GsoSize = 3, 1448
	r.SnapLen = uint16(snap)
	for i := range snap {
		raw[bpf.RecordSize+i] = byte(i)
	}
	return raw
}

func TestSegments(t *testing.T) {
	pipe := inproc.New(4)
	r := newReader(pipe, Config{})
	if err := r.add(context.Background(), superRecord(schemas.TCPAck|schemas.TCPPsh|schemas.TCPFin|schemas.TCPCwr, 2000)); err != nil {
		t.Fatal(err)
	}
	pkts := r.b.Packets
	if len(pkts) != 3 {
		t.Fatalf("%d packets, want 3", len(pkts))
	}
	for i, tc := range []struct {
		seq   uint32
		pay   uint32
		flags uint8
		ipid  uint32
		snap  int
	}{
		{1000, 1448, schemas.TCPAck | schemas.TCPCwr, 0xfffe, 1448},
		{2448, 1448, schemas.TCPAck, 0xffff, 552},
		{3896, 104, schemas.TCPAck | schemas.TCPPsh | schemas.TCPFin, 0, 0},
	} {
		p := pkts[i]
		if p.Seq != tc.seq || p.PayloadLen != tc.pay || p.TCPFlags != tc.flags || p.IPID != tc.ipid {
			t.Errorf("segment %d: seq %d payload %d flags %#x ip id %#x, want %d %d %#x %#x", i, p.Seq, p.PayloadLen, p.TCPFlags, p.IPID, tc.seq, tc.pay, tc.flags, tc.ipid)
		}
		if int(p.IPLen) != 52+int(tc.pay) || int(p.WireLen) != 66+int(tc.pay) {
			t.Errorf("segment %d: ip length %d wire %d, want %d %d", i, p.IPLen, p.WireLen, 52+tc.pay, 66+tc.pay)
		}
		if p.Src.String() != "198.18.0.1" {
			t.Errorf("segment %d: source %v", i, p.Src)
		}
	}
	if err := r.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, err := pipe.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot is cut along segment boundaries and stays contiguous.
	off := 0
	for i, p := range d.Batch.Packets {
		for j, c := range p.Payload {
			if c != byte(off+j) {
				t.Fatalf("segment %d snapshot byte %d = %d, want %d", i, j, c, byte(off+j))
			}
		}
		off += len(p.Payload)
	}
	if off != 2000 {
		t.Errorf("snapshot bytes over all segments %d, want 2000", off)
	}
}

func TestAddAllocs(t *testing.T) {
	r := newReader(discard{}, Config{BatchSize: 1 << 16})
	raw := superRecord(schemas.TCPAck, 0)
	(*bpf.Record)(unsafe.Pointer(&raw[0])).GsoSegs = 1
	raw = raw[:bpf.RecordSize]
	n := testing.AllocsPerRun(1000, func() {
		_ = r.add(context.Background(), raw)
		if len(r.b.Packets) > 60000 {
			r.b.Packets = r.b.Packets[:0]
		}
	})
	if n != 0 {
		t.Errorf("add allocates %.1f times per record", n)
	}
}
