package quic

import (
	"bytes"
	"testing"
)

// Appendix A of RFC 9001 (v1) and RFC 9369 (v2): the keys both sides
// derive from the client's DCID 0x8394c8f03e515708.
func TestInitialKeysRFCVectors(t *testing.T) {
	dcid := mustHex("8394c8f03e515708")
	tests := []struct {
		name        string
		version     uint32
		side        Side
		key, iv, hp string
	}{
		{"v1 client", Version1, Client, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{"v1 server", Version1, Server, "cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314"},
		{"v2 client", Version2, Client, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"},
		{"v2 server", Version2, Server, "82db637861d55e1d011f19ea71d5d2a7", "dd13c276499c0249d3310652", "edf6d05c83121201b436e16877593c3a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := InitialKeys(tt.version, tt.side, dcid)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what      string
				got, want []byte
			}{{"key", k.Key, mustHex(tt.key)}, {"iv", k.IV, mustHex(tt.iv)}, {"hp", k.HP, mustHex(tt.hp)}} {
				if !bytes.Equal(c.got, c.want) {
					t.Errorf("%s = %x, want %x", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestInitialKeysUnsupportedVersion(t *testing.T) {
	for _, v := range []uint32{0x51303436, 0xff000016, 0x12345678} {
		if _, err := InitialKeys(v, Client, []byte{1, 2, 3, 4}); !errorsIs(err, ErrUnsupportedVersion) {
			t.Errorf("InitialKeys(%#x) error = %v, want ErrUnsupportedVersion", v, err)
		}
	}
}
