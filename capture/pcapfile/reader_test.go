package pcapfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/capture"
)

// readAll drains a reader, copying each frame since Data is reused.
func readAll(t *testing.T, r *Reader) ([]capture.Frame, error) {
	t.Helper()
	var out []capture.Frame
	for {
		var f capture.Frame
		err := r.Next(&f)
		if err != nil {
			return out, err
		}
		if int(f.CapLen) != len(f.Data) {
			t.Fatalf("frame %d: CapLen %d but %d data bytes", len(out)+1, f.CapLen, len(f.Data))
		}
		f.Data = bytes.Clone(f.Data)
		out = append(out, f)
	}
}

// readBytes reads data twice, streamed through NewReader and memory-mapped
// through Open of a file holding it, and fails the test unless both give
// the same frames and the same error.
func readBytes(t *testing.T, data []byte, opts Options) ([]capture.Frame, error) {
	t.Helper()
	var frames [2][]capture.Frame
	var errs [2]error
	for i, r := range readers(t, data, "test", opts) {
		if r.err != nil {
			errs[i] = r.err
			continue
		}
		frames[i], errs[i] = readAll(t, r.r)
		r.r.Close()
	}
	if diff := cmp.Diff(frames[0], frames[1]); diff != "" {
		t.Fatalf("mapped file read differently (-streamed +mapped):\n%s", diff)
	}
	if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) {
		t.Fatalf("streamed read ended with %v, mapped read with %v", errs[0], errs[1])
	}
	return frames[0], errs[0]
}

// opened is a Reader from one way of opening, or the error opening it.
type opened struct {
	how string
	r   *Reader
	err error
}

// readers opens data both ways a capture is read: streamed from an
// io.Reader, and with Open from a file named name, which maps it. Both
// carry the file's path as their name.
func readers(t *testing.T, data []byte, name string, opts Options) [2]opened {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out [2]opened
	out[0].how = "streamed"
	out[0].r, out[0].err = NewReader(bytes.NewReader(data), path, opts)
	out[1].how = "mapped"
	out[1].r, out[1].err = Open(path, opts)
	if out[1].err == nil && len(data) >= 4 && out[1].r.in.mapped == nil && !out[1].r.zipped && runtime.GOOS == "linux" {
		t.Fatalf("Open did not map the %d-byte plain file", len(data))
	}
	return out
}

// TestMappedRelease: reading a mapped file hands back the pages behind the
// reader as it goes, so resident memory stays bounded by the window, and
// the frames are the ones a streamed read gives.
func TestMappedRelease(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("capture files are mapped on Linux only")
	}
	payload := bytes.Repeat([]byte{0xab}, 60000)
	var recs []pcapRec
	for i := range 3 * window / len(payload) {
		recs = append(recs, rec(uint32(i), 0, payload))
	}
	data := buildPcap(le, 0xa1b2c3d4, 4, 1, recs...)
	rs := readers(t, data, "big.pcap", Options{})
	var n [2]int
	for i, o := range rs {
		if o.err != nil {
			t.Fatal(o.err)
		}
		for {
			var f capture.Frame
			err := o.r.Next(&f)
			if err == io.EOF {
				break
			}
			if err != nil || !bytes.Equal(f.Data, payload) {
				t.Fatalf("%s frame %d: %v", o.how, n[i], err)
			}
			n[i]++
		}
	}
	if n[0] != len(recs) || n[1] != len(recs) {
		t.Fatalf("read %d streamed and %d mapped frames, want %d", n[0], n[1], len(recs))
	}
	m := rs[1].r
	if m.in.released < 2*window {
		t.Errorf("released %d bytes of a %d-byte mapped file, want at least %d", m.in.released, len(data), 2*window)
	}
	for _, o := range rs {
		if err := o.r.Close(); err != nil {
			t.Errorf("%s: Close: %v", o.how, err)
		}
	}
}

func frame(ts int64, link uint16, iface, caplen, wirelen uint32, data []byte) capture.Frame {
	return capture.Frame{TimestampNs: ts, LinkType: link, Iface: iface, CapLen: caplen, WireLen: wirelen, Data: data}
}

var (
	p1 = []byte{1, 2, 3, 4, 5, 6, 7}
	p2 = []byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11}
)

func TestPcapVariants(t *testing.T) {
	short := rec(10, 5, p2)
	short.wirelen = 1500
	// A pre-2.3 writer put len where caplen belongs.
	swapped := rec(10, 0, p1)
	swapped.caplen, swapped.wirelen = 60, uint32(len(p1))
	tests := []struct {
		name string
		data []byte
		want []capture.Frame
	}{
		{"micro little-endian", buildPcap(le, 0xa1b2c3d4, 4, 1, rec(1700000000, 123456, p1), short), []capture.Frame{
			frame(1700000000_123456000, 1, 0, 7, 7, p1),
			frame(10_000005000, 1, 0, 11, 1500, p2),
		}},
		{"micro big-endian", buildPcap(be, 0xa1b2c3d4, 4, 113, rec(1700000000, 999999, p1)), []capture.Frame{
			frame(1700000000_999999000, 113, 0, 7, 7, p1),
		}},
		{"nano little-endian", buildPcap(le, 0xa1b23c4d, 4, 101, rec(1700000000, 123456789, p1)), []capture.Frame{
			frame(1700000000_123456789, 101, 0, 7, 7, p1),
		}},
		{"nano big-endian", buildPcap(be, 0xa1b23c4d, 4, 276, rec(1700000000, 1, p2)), []capture.Frame{
			frame(1700000000_000000001, 276, 0, 11, 11, p2),
		}},
		{"FCS bits above the link type", buildPcap(le, 0xa1b2c3d4, 4, 1|0x14000000, rec(1, 0, p1)), []capture.Frame{
			frame(1e9, 1, 0, 7, 7, p1),
		}},
		{"version 2.2 swapped lengths", buildPcap(le, 0xa1b2c3d4, 2, 1, swapped), []capture.Frame{
			frame(10e9, 1, 0, 7, 60, p1),
		}},
		{"header only", buildPcap(le, 0xa1b2c3d4, 4, 1), nil},
		{"empty record", buildPcap(le, 0xa1b2c3d4, 4, 1, rec(3, 0, nil)), []capture.Frame{
			frame(3e9, 1, 0, 0, 0, []byte{}),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readBytes(t, tt.data, Options{})
			if err != io.EOF {
				t.Fatalf("got error %v, want io.EOF", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	pcap := buildPcap(le, 0xa1b2c3d4, 4, 1, rec(1, 0, p1))
	v3 := bytes.Clone(pcap)
	le.PutUint16(v3[4:], 3)
	ngv2 := (&ngWriter{order: le}).shb(2, 0).b
	badBOM := (&ngWriter{order: le}).shb(1, 0).b
	badBOM[8] = 0x4e
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotCapture},
		{"three bytes", []byte{0xd4, 0xc3, 0xb2}, ErrNotCapture},
		{"text", []byte("GET / HTTP/1.1\r\n"), ErrNotCapture},
		{"pcap header cut", pcap[:20], ErrTruncated},
		{"pcap version 3", v3, ErrUnsupportedVersion},
		{"pcapng version 2.0", ngv2, ErrUnsupportedVersion},
		{"pcapng bad byte-order magic", badBOM, ErrCorrupt},
		{"pcapng header cut", ngv2[:16], ErrTruncated},
		{"gzip garbage", []byte{0x1f, 0x8b, 0, 0, 0, 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tt.data), "sample.bin", Options{})
			if err == nil {
				r.Close()
				t.Fatal("NewReader succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte("sample.bin")) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestPcapLinkTypeFilter(t *testing.T) {
	data := buildPcap(le, 0xa1b2c3d4, 4, 182, rec(1, 0, p1))
	_, err := NewReader(bytes.NewReader(data), "x", Options{LinkTypes: []uint16{capture.LinkEthernet}})
	if !errors.Is(err, capture.ErrUnsupportedLinkType) {
		t.Fatalf("got %v, want ErrUnsupportedLinkType", err)
	}
	got, err := readBytes(t, data, Options{})
	if err != io.EOF || len(got) != 1 || got[0].LinkType != 182 {
		t.Fatalf("without a filter: %d frames, %v", len(got), err)
	}
}

// A damaged tail ends the stream after every intact frame, with an error
// saying where.
func TestPcapDamagedTail(t *testing.T) {
	good := buildPcap(le, 0xa1b2c3d4, 4, 1, rec(1, 0, p1), rec(2, 0, p2))
	huge := rec(3, 0, p1)
	huge.caplen = 4325376
	tests := []struct {
		name       string
		data       []byte
		want       error
		wantOffset int64
	}{
		{"cut inside record header", good[:len(good)-len(p2)-10], ErrTruncated, 24 + 16 + 7},
		{"cut inside record data", good[:len(good)-1], ErrTruncated, 24 + 16 + 7},
		{"caplen beyond maximum", buildPcap(le, 0xa1b2c3d4, 4, 1, rec(1, 0, p1), huge), ErrCorrupt, 24 + 16 + 7},
	}
	for _, tt := range tests {
		for _, o := range readers(t, tt.data, "tail.pcap", Options{}) {
			t.Run(tt.name+"/"+o.how, func(t *testing.T) {
				r, err := o.r, o.err
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				got, err := readAll(t, r)
				if len(got) != 1 || !bytes.Equal(got[0].Data, p1) {
					t.Fatalf("got %d frames before the damage, want the 1 intact one", len(got))
				}
				var re *RecordError
				if !errors.As(err, &re) || !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want a *RecordError wrapping %v", err, tt.want)
				}
				if re.Index != 2 || re.Offset != tt.wantOffset || filepath.Base(re.Name) != "tail.pcap" {
					t.Errorf("error at record %d byte %d of %q, want record 2 byte %d of tail.pcap", re.Index, re.Offset, re.Name, tt.wantOffset)
				}
				if again := r.Next(&capture.Frame{}); again != err {
					t.Errorf("second Next returned %v, want the same error", again)
				}
				if s := r.Stats(); s.Frames != 1 {
					t.Errorf("Stats.Frames = %d, want 1", s.Frames)
				}
			})
		}
	}
}

func TestMaxRecordLen(t *testing.T) {
	data := buildPcap(le, 0xa1b2c3d4, 4, 1, rec(1, 0, p1), rec(2, 0, p2))
	got, err := readBytes(t, data, Options{MaxRecordLen: 8})
	if len(got) != 1 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %d frames and %v, want 1 frame then ErrCorrupt", len(got), err)
	}
}

func TestPcapng(t *testing.T) {
	for _, order := range []byteOrder{le, be} {
		w := &ngWriter{order: order}
		ns := w.opt(optTsresol, []byte{9})
		bin := w.opt(optTsresol, []byte{0x80 | 10})
		pico := w.opt(optTsresol, []byte{12})
		off := w.opt(optTsoffset, order.AppendUint64(nil, 1000))
		w.shb(1, 0).
			idb(capture.LinkEthernet, 0).                          // iface 0: microseconds
			idb(capture.LinkRaw, 0, ns, off).                      // iface 1: ns + 1000 s
			block(4, []byte("name resolution block, skipped")).    // NRB
			epb(0, 1_500_000, 60, p1).                             // 1.5 s
			epb(1, 2_000_000_001, 11, p2).                         // 2.000000001 s + 1000 s
			block(5, []byte("interface statistics, skipped....")). // ISB
			block(0x0bad, nil).                                    // custom block
			pb(0, 3_000_000, 7, p1).
			spb(60, p1).                      // no timestamp: keeps 3 s
			shb(1, 2).                        // a new section forgets interfaces
			idb(capture.LinkSLL2, 0, bin).    // global iface 2: 2^-10 s
			idb(capture.LinkNull, 0, pico).   // global iface 3: 10^-12 s
			epb(0, 1024*5+512, 7, p1).        // 5.5 s
			epb(1, 7_000_000_000_123, 11, p2) // 7.000000000123 s
		want := []capture.Frame{
			frame(1_500_000_000, capture.LinkEthernet, 0, 7, 60, p1),
			frame(1002_000_000_001, capture.LinkRaw, 1, 11, 11, p2),
			frame(3_000_000_000, capture.LinkEthernet, 0, 7, 7, p1),
			// SPB: captured length is the padded block body cut to len.
			frame(3_000_000_000, capture.LinkEthernet, 0, 8, 60, append(bytes.Clone(p1), 0)),
			frame(5_500_000_000, capture.LinkSLL2, 2, 7, 7, p1),
			frame(7_000_000_000, capture.LinkNull, 3, 11, 11, p2),
		}
		t.Run(order.String(), func(t *testing.T) {
			got, err := readBytes(t, w.b, Options{})
			if err != io.EOF {
				t.Fatalf("got %v, want io.EOF", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPcapngSnaplenAndSkips(t *testing.T) {
	w := &ngWriter{order: le}
	w.shb(1, 0).
		idb(capture.LinkEthernet, 4).
		idb(182, 0).
		spb(100, p2).     // snaplen 4 caps the captured length
		epb(1, 0, 7, p1). // link type filtered out
		epb(9, 0, 7, p1). // no such interface
		epb(0, 1e6, 7, p1[:4])
	r, err := NewReader(bytes.NewReader(w.b), "x", Options{LinkTypes: []uint16{capture.LinkEthernet}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, r)
	if err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	want := []capture.Frame{
		frame(0, capture.LinkEthernet, 0, 4, 100, p2[:4]),
		frame(1e9, capture.LinkEthernet, 0, 4, 7, p1[:4]),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	if s := r.Stats(); s.Skips != 2 || s.Frames != 2 || s.Bytes != uint64(len(w.b)) {
		t.Errorf("stats %+v, want 2 frames, 2 skips, %d bytes", s, len(w.b))
	}
}

func TestPcapngDamagedTail(t *testing.T) {
	order := le
	base := (&ngWriter{order: order}).shb(1, 0).idb(1, 0).epb(0, 0, 7, p1)
	ok := len(base.b)
	tail := (&ngWriter{order: order}).epb(0, 1, 11, p2).b
	badLen := bytes.Clone(tail)
	order.PutUint32(badLen[4:], 42)
	badTrailer := bytes.Clone(tail)
	order.PutUint32(badTrailer[len(badTrailer)-4:], 8)
	overrun := bytes.Clone(tail)
	order.PutUint32(overrun[20:], 200)
	huge := bytes.Clone(tail)
	order.PutUint32(huge[4:], 1<<30)
	tests := []struct {
		name string
		tail []byte
		want error
	}{
		{"cut inside block", tail[:len(tail)-5], ErrTruncated},
		{"cut inside block header", tail[:6], ErrTruncated},
		{"length not a multiple of 4", badLen, ErrCorrupt},
		{"trailer mismatch", badTrailer, ErrCorrupt},
		{"caplen overruns block", overrun, ErrCorrupt},
		{"block beyond maximum", huge, ErrCorrupt},
		{"second section of version 2", (&ngWriter{order: order}).shb(2, 0).b, ErrUnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append(bytes.Clone(base.b), tt.tail...)
			got, err := readBytes(t, data, Options{})
			if len(got) != 1 {
				t.Fatalf("got %d frames, want the 1 intact one", len(got))
			}
			var re *RecordError
			if !errors.As(err, &re) || !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want a *RecordError wrapping %v", err, tt.want)
			}
			if re.Kind != "block" || re.Index != 4 || re.Offset != int64(ok) {
				t.Errorf("error at %s %d byte %d, want block 4 byte %d", re.Kind, re.Index, re.Offset, ok)
			}
		})
	}
}

// Frame data is capped at its own length, so a caller appending to it
// cannot overwrite the next frame in the shared buffer.
func TestFrameDataCapacity(t *testing.T) {
	data := buildPcap(le, 0xa1b2c3d4, 4, 1, rec(1, 0, p1), rec(2, 0, p2))
	r, err := NewReader(bytes.NewReader(data), "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var f capture.Frame
	if err := r.Next(&f); err != nil {
		t.Fatal(err)
	}
	if cap(f.Data) != len(f.Data) {
		t.Fatalf("cap %d > len %d", cap(f.Data), len(f.Data))
	}
	_ = append(f.Data, 0xee, 0xee, 0xee, 0xee)
	if err := r.Next(&f); err != nil || !bytes.Equal(f.Data, p2) {
		t.Fatalf("second frame %x, %v; want %x", f.Data, err, p2)
	}
}

// Records larger than the read buffer grow it instead of failing.
func TestRecordLargerThanBuffer(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, bufferSize+12345)
	data := buildPcap(le, 0xa1b2c3d4, 4, 1, rec(1, 0, p1), rec(2, 0, big), rec(3, 0, p2))
	got, err := readBytes(t, data, Options{MaxRecordLen: 2 * bufferSize})
	if err != io.EOF || len(got) != 3 || !bytes.Equal(got[1].Data, big) || !bytes.Equal(got[2].Data, p2) {
		t.Fatalf("got %d frames, %v", len(got), err)
	}
}

func TestNextAllocs(t *testing.T) {
	var recs []pcapRec
	for i := range 2000 {
		recs = append(recs, rec(uint32(i), 0, p2))
	}
	pcap := buildPcap(le, 0xa1b2c3d4, 4, 1, recs...)
	w := (&ngWriter{order: be}).shb(1, 0).idb(1, 0)
	for i := range 2000 {
		w.epb(0, uint64(i), 11, p2)
	}
	for name, data := range map[string][]byte{"pcap": pcap, "pcapng": w.b} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(data), name, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var f capture.Frame
			allocs := testing.AllocsPerRun(1000, func() {
				if err := r.Next(&f); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Next allocates %.1f times per frame", allocs)
			}
		})
	}
}
