package quic

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// hello builds a ClientHello-typed handshake message of n body bytes.
func hello(n int) []byte {
	m := []byte{1, byte(n >> 16), byte(n >> 8), byte(n)}
	for i := 0; i < n; i++ {
		m = append(m, byte(i*7+3))
	}
	return m
}

type piece struct{ off, end int }

func TestAssemblerOrders(t *testing.T) {
	msg := hello(1500)
	tests := []struct {
		name   string
		pieces []piece
	}{
		{"one frame", []piece{{0, len(msg)}}},
		{"in order", []piece{{0, 700}, {700, 1200}, {1200, len(msg)}}},
		{"reversed", []piece{{1200, len(msg)}, {700, 1200}, {0, 700}}},
		{"gap filled last", []piece{{0, 300}, {900, len(msg)}, {300, 900}}},
		{"duplicates and overlaps", []piece{{0, 500}, {0, 500}, {600, 1000}, {200, 300}, {900, len(msg)}, {450, 650}}},
		{"header split", []piece{{2, 800}, {0, 2}, {800, len(msg)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Assembler
			for i, p := range tt.pieces {
				if _, ok := a.ClientHello(); ok {
					t.Fatalf("complete before piece %d", i)
				}
				if err := a.Add(uint64(p.off), msg[p.off:p.end]); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := a.ClientHello()
			if !ok || !bytes.Equal(got, msg) {
				t.Fatalf("ClientHello ok=%v len %d, want len %d", ok, len(got), len(msg))
			}
			if a.Conflicts() != 0 {
				t.Errorf("%d conflicts", a.Conflicts())
			}
		})
	}
}

// Random splits, orders and retransmissions always rebuild the message,
// and never report it complete before every byte arrived.
func TestAssemblerRandomSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	msg := hello(3000)
	var a Assembler
	for trial := 0; trial < 200; trial++ {
		a.Reset()
		var pieces []piece
		for off := 0; off < len(msg); {
			end := min(len(msg), off+1+rng.IntN(400))
			pieces = append(pieces, piece{off, end})
			off = end
		}
		for i := range pieces { // retransmit some
			if rng.IntN(4) == 0 {
				pieces = append(pieces, pieces[i])
			}
		}
		rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
		have := make([]bool, len(msg))
		for _, p := range pieces {
			if err := a.Add(uint64(p.off), msg[p.off:p.end]); err != nil {
				t.Fatal(err)
			}
			for i := p.off; i < p.end; i++ {
				have[i] = true
			}
			all := !bytes.Contains(boolBytes(have), []byte{0})
			got, ok := a.ClientHello()
			if ok != all || ok && !bytes.Equal(got, msg) {
				t.Fatalf("trial %d: complete=%v, all bytes=%v", trial, ok, all)
			}
		}
	}
}

func boolBytes(b []bool) []byte {
	out := make([]byte, len(b))
	for i, v := range b {
		if v {
			out[i] = 1
		}
	}
	return out
}

func TestAssemblerConflictKeepsFirst(t *testing.T) {
	msg := hello(100)
	var a Assembler
	if err := a.Add(0, msg); err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(msg[50:80])
	forged[3] ^= 0xff
	if err := a.Add(50, forged); err != nil {
		t.Fatal(err)
	}
	got, ok := a.ClientHello()
	if !ok || !bytes.Equal(got, msg) || a.Conflicts() != 1 {
		t.Errorf("ok=%v same=%v conflicts=%d", ok, bytes.Equal(got, msg), a.Conflicts())
	}
}

// After a HelloRetryRequest the stream holds a second ClientHello; it is
// the one reported.
func TestAssemblerSecondClientHello(t *testing.T) {
	first, second := hello(50), hello(70)
	second[10] = 0xee
	var a Assembler
	if err := a.Add(0, first); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(uint64(len(first)), second[:30]); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.ClientHello(); !bytes.Equal(got, first) {
		t.Fatal("first ClientHello not reported while the second is partial")
	}
	if err := a.Add(uint64(len(first)+30), second[30:]); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.ClientHello(); !bytes.Equal(got, second) {
		t.Error("second ClientHello not reported")
	}
}

func TestAssemblerLimits(t *testing.T) {
	tests := []struct {
		name string
		add  func(a *Assembler) error
	}{
		{"frame past limit", func(a *Assembler) error { return a.Add(DefaultLimit-10, make([]byte, 11)) }},
		{"offset past limit", func(a *Assembler) error { return a.Add(1<<62, []byte{1}) }},
		{"message longer than limit", func(a *Assembler) error { return a.Add(0, []byte{1, 0x01, 0, 1}) }},
		{"too many gaps", func(a *Assembler) error {
			for i := 0; ; i++ {
				if err := a.Add(uint64(10+2*i), []byte{1}); err != nil {
					return err
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Assembler
			if err := tt.add(&a); !errors.Is(err, ErrCryptoLimit) {
				t.Errorf("error %v, want ErrCryptoLimit", err)
			}
			if cap(a.buf) > DefaultLimit {
				t.Errorf("buffer grew to %d", cap(a.buf))
			}
		})
	}
	a := Assembler{Limit: 100}
	if err := a.Add(50, make([]byte, 51)); !errors.Is(err, ErrCryptoLimit) {
		t.Errorf("custom limit: %v", err)
	}
}

func TestAssemblerServerHello(t *testing.T) {
	msg := hello(40)
	msg[0] = handshakeServerHello
	var a Assembler
	if err := a.Add(0, msg); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.ClientHello(); ok {
		t.Error("ServerHello reported as ClientHello")
	}
	if got, ok := a.ServerHello(); !ok || !bytes.Equal(got, msg) {
		t.Error("no ServerHello")
	}
}

// After the server's first Initial the client sends to the server's
// connection ID, still with keys from its original one; a Retry brings a
// new DCID, new keys and a new CRYPTO stream.
func TestFlowFollowsDCIDChanges(t *testing.T) {
	serverCID := mustHex("b0b1b2b3b4b5b6b7")
	retryCID := mustHex("c0c1c2c3c4c5c6c7")
	msg := hello(30)
	var f Flow
	var d Decoder
	steps := []struct {
		name     string
		pkt      []byte
		complete bool
		key      []byte
	}{
		{"first half", sealInitial(t, Version1, testDCID, testDCID, 0, cryptoFrame(frameCrypto, 0, msg[:15])), false, testDCID},
		{"second half to server CID", sealInitial(t, Version1, testDCID, serverCID, 1, cryptoFrame(frameCrypto, 15, msg[15:])), true, testDCID},
		{"after retry", sealInitial(t, Version1, retryCID, retryCID, 0, cryptoFrame(frameCrypto, 0, msg[:10])), false, retryCID},
		{"after retry, rest", sealInitial(t, Version1, retryCID, retryCID, 1, cryptoFrame(frameCrypto, 10, msg[10:])), true, retryCID},
	}
	for _, s := range steps {
		if _, err := f.Add(&d, s.pkt); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if _, ok := f.ClientHello(); ok != s.complete {
			t.Errorf("%s: complete=%v", s.name, ok)
		}
		if !bytes.Equal(f.KeyDCID(), s.key) {
			t.Errorf("%s: key DCID %x, want %x", s.name, f.KeyDCID(), s.key)
		}
	}
}
