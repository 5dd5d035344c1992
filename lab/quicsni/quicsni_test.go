package quicsni

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/quic-go/quic-go"

	"github.com/tamperscope/tamperscope/internal/testenv"
)

// clientInitials returns the datagrams a real QUIC client (quic-go) sends
// first when it dials name: its Initial packets carrying the ClientHello.
func clientInitials(t testing.TB, name string) [][]byte {
	t.Helper()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	go func() {
		_, _ = quic.DialAddr(ctx, sink.LocalAddr().String(), &tls.Config{ServerName: name, NextProtos: []string{"x"}}, nil)
	}()
	var out [][]byte
	buf := make([]byte, 2048)
	// quic-go sends its whole first flight at once; 2 datagrams suffice
	// for any ClientHello this size.
	_ = sink.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	for {
		n, _, err := sink.ReadFromUDP(buf)
		if err != nil {
			break
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	if len(out) == 0 {
		t.Fatal("quic-go sent no Initial")
	}
	return out
}

func TestAssemblerReadsQUICGoClientHello(t *testing.T) {
	for _, name := range []string{"a.test", "shop.example.test", "very-long-name-0123456789.sub.domain.hosting.test"} {
		t.Run(name, func(t *testing.T) {
			var a Assembler
			var got string
			for _, d := range clientInitials(t, name) {
				n, err := a.Add("f", d)
				if err == nil {
					got = n
					break
				}
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("Add: %v", err)
				}
			}
			if got != name {
				t.Fatalf("server name %q, want %q", got, name)
			}
		})
	}
}

func TestRejectsNonInitial(t *testing.T) {
	d := clientInitials(t, "x.test")[0]
	tampered := append([]byte(nil), d...)
	tampered[len(tampered)-1] ^= 0xff // breaks the AEAD tag
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short header", []byte{0x40, 1, 2, 3}},
		{"version 2", append([]byte{0xc0, 0x6b, 0x33, 0x43, 0xcf}, d[5:]...)},
		{"cut", d[:40]},
		{"tampered", tampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if name, err := ServerName(tc.in); err == nil {
				t.Fatalf("ServerName = %q, want an error", name)
			}
		})
	}
}

// TestLabCapture reads the QUIC Initials of the lab's quic-sni capture: the
// blocked name must be among the names the Initials carry.
func TestLabCapture(t *testing.T) {
	path := filepath.Join("..", "testdata", "quic-sni-seed1", "capture.pcap")
	f, err := os.Open(path)
	if err != nil {
		testenv.Need(t, fmt.Sprintf("no lab capture (run 'make lab' as root): %v", err))
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	var a Assembler
	names := map[string]int{}
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || udp.DstPort != 443 {
			continue
		}
		flow := p.NetworkLayer().NetworkFlow().String() + udp.TransportFlow().String()
		if n, err := a.Add(flow, udp.Payload); err == nil {
			names[n]++
		}
	}
	if len(names) < 2 {
		t.Fatalf("names from lab Initials: %v, want several", names)
	}
}

func FuzzServerName(f *testing.F) {
	for _, d := range clientInitials(f, "fuzz.test") {
		f.Add(d)
	}
	f.Add([]byte{0xc0, 0, 0, 0, 1, 0, 0, 0, 0x41, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Assembler
		_, _ = a.Add("f", b)
		_, _ = a.Add("f", b)
	})
}
