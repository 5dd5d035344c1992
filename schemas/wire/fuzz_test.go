package wire

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tamperscope/tamperscope/schemas"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must return rows or a
// typed error, never panic, and rows it returns must survive a second
// round trip unchanged.
func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, c := range codecs {
		for _, n := range []int{0, 1, 3} {
			msg := encode(f, c, randomBatch(rng, n))
			f.Add(msg)
			f.Add(msg[:len(msg)/2])
		}
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	d := NewDecoder(DecoderOptions{MaxBytes: 1 << 20, MaxRows: 1 << 12})
	e, _ := NewEncoder(EncoderOptions{Codec: Uncompressed})
	var b, again schemas.PacketBatch
	f.Fuzz(func(t *testing.T, msg []byte) {
		err := d.Decode(msg, &b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		out, err := e.Encode(nil, &b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if err := d.Decode(out, &again); err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if diff := cmp.Diff(b.Packets, again.Packets, addrCmp); diff != "" && len(b.Packets) > 0 {
			t.Fatalf("second round trip (-first +second):\n%s", diff)
		}
	})
}
