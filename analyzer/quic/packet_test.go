package quic

import (
	"bytes"
	"errors"
	"testing"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// The protected packets of RFC 9001 A.2/A.3 and RFC 9369 A.2/A.3 decrypt to
// the frames the appendices list: the client's CRYPTO frame holding a
// ClientHello for example.com, the server's ACK and ServerHello.
func TestDecodeRFCPackets(t *testing.T) {
	dcid := mustHex("8394c8f03e515708")
	clientPayload := readHex(t, "rfc9001_client_payload.hex") // 06 00 40f1 <ClientHello>
	serverPayload := readHex(t, "rfc9001_server_payload.hex") // ACK, 06 00 405a <ServerHello>
	tests := []struct {
		file       string
		side       Side
		version    uint32
		wantDCID   []byte
		wantSCID   []byte
		wantPN     uint64
		wantCrypto []byte
	}{
		{"rfc9001_client_initial.hex", Client, Version1, dcid, nil, 2, clientPayload[4:]},
		{"rfc9369_client_initial.hex", Client, Version2, dcid, nil, 2, clientPayload[4:]},
		{"rfc9001_server_initial.hex", Server, Version1, nil, mustHex("f067a5502a4262b5"), 1, serverPayload[9:]},
		{"rfc9369_server_initial.hex", Server, Version2, nil, mustHex("f067a5502a4262b5"), 1, serverPayload[9:]},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pkt := readHex(t, tt.file)
			orig := bytes.Clone(pkt)
			var d Decoder
			in, err := d.Decode(pkt, tt.side, dcid)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pkt, orig) {
				t.Error("Decode modified the datagram")
			}
			if in.Version != tt.version || in.PacketNumber != tt.wantPN || in.Packets != 1 {
				t.Errorf("version %#x pn %d packets %d, want %#x pn %d packets 1", in.Version, in.PacketNumber, in.Packets, tt.version, tt.wantPN)
			}
			if !bytes.Equal(in.DCID, tt.wantDCID) || !bytes.Equal(in.SCID, tt.wantSCID) || len(in.Token) != 0 {
				t.Errorf("dcid %x scid %x token %x", in.DCID, in.SCID, in.Token)
			}
			if len(in.Crypto) != 1 || in.Crypto[0].Offset != 0 || !bytes.Equal(in.Crypto[0].Data, tt.wantCrypto) {
				t.Fatalf("crypto frames %+v, want one at 0 with %x", in.Crypto, tt.wantCrypto)
			}
			var a Assembler
			if err := a.AddInitial(&in); err != nil {
				t.Fatal(err)
			}
			if tt.side == Client {
				hello, ok := a.ClientHello()
				if !ok {
					t.Fatal("no ClientHello")
				}
				if sni, err := sniOf(hello); err != nil || sni != "example.com" {
					t.Errorf("sni = %q, %v; want example.com", sni, err)
				}
			} else if _, ok := a.ServerHello(); !ok {
				t.Error("no ServerHello")
			}
		})
	}
}

func TestParseInitialUsesOwnDCIDForClients(t *testing.T) {
	in, err := ParseInitial(readHex(t, "rfc9001_client_initial.hex"))
	if err != nil || len(in.Crypto) != 1 {
		t.Fatalf("ParseInitial: %+v, %v", in, err)
	}
	// A server Initial needs the client's DCID: its own DCID gives
	// keys that fail authentication.
	if _, err := ParseInitial(readHex(t, "rfc9001_server_initial.hex")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("server Initial with own DCID: %v, want ErrDecrypt", err)
	}
}
