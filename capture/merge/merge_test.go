package merge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/internal/corpustest"
)

// fakeSource yields frames through one reused buffer, so a merge that
// advanced it before the caller was done with its frame is caught: the
// delivered bytes would have changed underneath.
type fakeSource struct {
	frames []capture.Frame
	err    error // returned after the frames; io.EOF when nil
	buf    []byte
	next   int
	closed bool
}

func (s *fakeSource) Next(f *capture.Frame) error {
	if s.next == len(s.frames) {
		if s.err != nil {
			return s.err
		}
		return io.EOF
	}
	*f = s.frames[s.next]
	s.buf = append(s.buf[:0], f.Data...)
	f.Data = s.buf
	s.next++
	return nil
}

func (s *fakeSource) Stats() capture.Stats {
	return capture.Stats{Frames: uint64(s.next), Bytes: 10 * uint64(s.next), Skips: 1}
}

func (s *fakeSource) Close() error { s.closed = true; return nil }

func fake(tag byte, ts ...int64) *fakeSource {
	s := &fakeSource{}
	for i, t := range ts {
		s.frames = append(s.frames, capture.Frame{TimestampNs: t, CapLen: 2, WireLen: 2, Data: []byte{tag, byte(i)}})
	}
	return s
}

// drain copies every frame at the moment Next returns it.
func drain(t *testing.T, src capture.Source) ([]capture.Frame, error) {
	t.Helper()
	var out []capture.Frame
	for {
		var f capture.Frame
		if err := src.Next(&f); err != nil {
			return out, err
		}
		f.Data = bytes.Clone(f.Data)
		out = append(out, f)
	}
}

func tags(frames []capture.Frame) string {
	var b bytes.Buffer
	for _, f := range frames {
		fmt.Fprintf(&b, "%c%d@%d ", f.Data[0], f.Data[1], f.TimestampNs)
	}
	return b.String()
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name string
		srcs []*fakeSource
		want string
	}{
		{"none", nil, ""},
		{"one", []*fakeSource{fake('a', 1, 2, 3)}, "a0@1 a1@2 a2@3 "},
		{"interleaved", []*fakeSource{fake('a', 1, 4, 5), fake('b', 2, 3, 6)}, "a0@1 b0@2 b1@3 a1@4 a2@5 b2@6 "},
		{"ties go to the earlier source", []*fakeSource{fake('a', 5, 5), fake('b', 5), fake('c', 1, 5)}, "c0@1 a0@5 a1@5 b0@5 c1@5 "},
		{"empty sources", []*fakeSource{fake('a'), fake('b', 7), fake('c')}, "b0@7 "},
		{"a source going backwards keeps its order", []*fakeSource{fake('a', 10, 1), fake('b', 5)}, "b0@5 a0@10 a1@1 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srcs []capture.Source
			for _, s := range tt.srcs {
				srcs = append(srcs, s)
			}
			m := New(srcs...)
			got, err := drain(t, m)
			if err != io.EOF {
				t.Fatalf("got %v, want io.EOF", err)
			}
			if tags(got) != tt.want {
				t.Errorf("got %s\nwant %s", tags(got), tt.want)
			}
			if again := m.Next(&capture.Frame{}); again != io.EOF {
				t.Errorf("Next after the end returned %v", again)
			}
			s := m.Stats()
			if s.Frames != uint64(len(got)) || s.Bytes != 10*uint64(len(got)) || s.Skips != uint64(len(srcs)) {
				t.Errorf("stats %+v for %d frames from %d sources", s, len(got), len(srcs))
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.srcs {
				if !s.closed {
					t.Errorf("source %d not closed", i)
				}
			}
		})
	}
}

// A failing source leaves the others' frames flowing; the failure comes
// back at the end, naming the source.
func TestSourceErrorKeepsOthers(t *testing.T) {
	boom := errors.New("disk on fire")
	bad := fake('a', 1, 3)
	bad.err = boom
	m := New(fake('x', 0), bad, fake('b', 2, 4, 6))
	var got []capture.Frame
	var f capture.Frame
	var err error
	for err = m.Next(&f); err == nil; err = m.Next(&f) {
		if f.TimestampNs == 4 && len(m.Errors()) != 1 {
			t.Errorf("after the failing source ran out, Errors() = %v", m.Errors())
		}
		f.Data = bytes.Clone(f.Data)
		got = append(got, f)
	}
	if want := "x0@0 a0@1 b0@2 a1@3 b1@4 b2@6 "; tags(got) != want {
		t.Errorf("got %s\nwant %s", tags(got), want)
	}
	if !errors.Is(err, boom) || err == io.EOF {
		t.Fatalf("end error %v, want one wrapping %v", err, boom)
	}
	if want := "read merge source 1: disk on fire"; err.Error() != want {
		t.Errorf("end error %q, want %q", err, want)
	}
	if again := m.Next(&f); again != err {
		t.Errorf("Next after the end returned %v, want %v", again, err)
	}
}

func TestNextAllocs(t *testing.T) {
	var ts []int64
	for i := range 3000 {
		ts = append(ts, int64(i))
	}
	m := New(fake('a', ts...), fake('b', ts...), fake('c', ts...))
	var f capture.Frame
	allocs := testing.AllocsPerRun(5000, func() {
		if err := m.Next(&f); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Next allocates %.1f times per frame", allocs)
	}
}

// mergeFiles merges the capture files, in that order of sources, and
// returns what drain returns.
func mergeFiles(t *testing.T, paths ...string) ([]capture.Frame, error) {
	t.Helper()
	var srcs []capture.Source
	for _, p := range paths {
		r, err := pcapfile.Open(p, pcapfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, r)
	}
	m := New(srcs...)
	defer m.Close()
	return drain(t, m)
}

func readCapture(t *testing.T, path string) []capture.Frame {
	t.Helper()
	r, err := pcapfile.Open(path, pcapfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	frames, err := drain(t, r)
	if err != io.EOF {
		t.Fatalf("read %s: %v", path, err)
	}
	return frames
}

// writePcap writes frames with gopacket's writer, independent of the reader.
func writePcap(t *testing.T, path string, frames []capture.Frame) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, layers.LinkType(frames[0].LinkType)); err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, fr.TimestampNs), CaptureLength: int(fr.CapLen), Length: int(fr.WireLen)}
		if err := w.WritePacket(ci, fr.Data); err != nil {
			t.Fatal(err)
		}
	}
}

// Splitting a capture into two files by alternating frames and merging them
// back must give the original capture.
func TestMergeSplitCapture(t *testing.T) {
	corpustest.Require(t)
	orig := readCapture(t, corpustest.Path("censorship-tripwire/testdata/airtel_example.pcap"))
	// Strictly increasing, so the merged order is unique: with a tie the
	// odd file, passed first, would win.
	for i := 1; i < len(orig); i++ {
		if orig[i].TimestampNs <= orig[i-1].TimestampNs {
			t.Fatalf("source capture not strictly ordered at frame %d", i+1)
		}
	}
	var even, odd []capture.Frame
	for i, f := range orig {
		if i%2 == 0 {
			even = append(even, f)
		} else {
			odd = append(odd, f)
		}
	}
	dir := t.TempDir()
	writePcap(t, filepath.Join(dir, "even.pcap"), even)
	writePcap(t, filepath.Join(dir, "odd.pcap"), odd)
	got, err := mergeFiles(t, filepath.Join(dir, "odd.pcap"), filepath.Join(dir, "even.pcap"))
	if err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if diff := cmp.Diff(orig, got); diff != "" {
		t.Errorf("merged frames differ from the original (-want +got):\n%s", diff)
	}
}

// Two real captures, one pcap and one pcapng with two interfaces, one of
// them cut short: every intact frame comes out, in order, then the error.
func TestMergeTruncatedFile(t *testing.T) {
	corpustest.Require(t)
	pcapPath := corpustest.Path("censorship-tripwire/testdata/airtel_example.pcap")
	ngPath := corpustest.Path("zeek/pcapng-multi-interface.pcapng")
	whole := readCapture(t, pcapPath)
	data, err := os.ReadFile(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, data[:len(data)-30], 0o600); err != nil {
		t.Fatal(err)
	}
	ng := readCapture(t, ngPath)
	got, err := mergeFiles(t, ngPath, cut)
	if !errors.Is(err, pcapfile.ErrTruncated) || !bytes.Contains([]byte(err.Error()), []byte("merge source 1")) {
		t.Fatalf("end error %v, want ErrTruncated from merge source 1", err)
	}
	if want := len(ng) + len(whole) - 1; len(got) != want {
		t.Errorf("got %d frames, want %d", len(got), want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].TimestampNs < got[i-1].TimestampNs {
			t.Errorf("frame %d at %d before frame %d at %d", i+1, got[i].TimestampNs, i, got[i-1].TimestampNs)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	const perSource = 1 << 16
	ts := make([]int64, perSource)
	for i := range ts {
		ts[i] = int64(i)
	}
	newMerger := func() *Merger {
		return New(fake('a', ts...), fake('b', ts...), fake('c', ts...), fake('d', ts...))
	}
	m := newMerger()
	var f capture.Frame
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Next(&f); err != nil {
			b.StopTimer()
			m = newMerger()
			b.StartTimer()
		}
	}
}
