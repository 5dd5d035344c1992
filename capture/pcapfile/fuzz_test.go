package pcapfile

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/tamperscope/tamperscope/capture"
)

// Seeds live in testdata/fuzz/<target>: small synthetic captures of each
// feature (byte orders, resolutions, sections, block kinds, damaged tails).

func FuzzPcap(f *testing.F)   { f.Fuzz(fuzzRead) }
func FuzzPcapng(f *testing.F) { f.Fuzz(fuzzRead) }

// fuzzRead holds the reader to its contract on arbitrary input: no panic,
// frames consistent with their lengths, and an end that is io.EOF or a
// located *RecordError inside the input.
func fuzzRead(t *testing.T, data []byte) {
	const maxRec = 1 << 16
	r, err := NewReader(bytes.NewReader(data), "fuzz", Options{MaxRecordLen: maxRec})
	if err != nil {
		if r != nil {
			t.Fatal("NewReader returned both a reader and an error")
		}
		return
	}
	defer r.Close()
	var f capture.Frame
	var frames uint64
	for err = r.Next(&f); err == nil; err = r.Next(&f) {
		frames++
		if int(f.CapLen) != len(f.Data) || f.CapLen > maxRec {
			t.Fatalf("frame %d: CapLen %d with %d data bytes", frames, f.CapLen, len(f.Data))
		}
		// Every record has a header of at least 12 bytes.
		if frames*12 > uint64(len(data)) {
			t.Fatalf("%d frames from %d bytes", frames, len(data))
		}
	}
	if err != io.EOF {
		var re *RecordError
		if !errors.As(err, &re) {
			t.Fatalf("stream ended with %T %v, want io.EOF or *RecordError", err, err)
		}
		if re.Offset < 0 || re.Offset > int64(len(data)) {
			t.Fatalf("error offset %d outside a %d-byte input", re.Offset, len(data))
		}
	}
	s := r.Stats()
	if s.Frames != frames {
		t.Fatalf("Stats.Frames = %d, delivered %d", s.Frames, frames)
	}
	if err == io.EOF && len(data) > 0 && data[0] != 0x1f && data[0] != 0x28 && s.Bytes != uint64(len(data)) {
		t.Fatalf("clean end after %d of %d bytes", s.Bytes, len(data))
	}
}
