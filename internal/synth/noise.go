package synth

import (
	"encoding/binary"
	"time"
)

func unixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }

type dnsSet struct{ names []string }

func dnsMessages(names []string) dnsSet { return dnsSet{names} }

func (d dnsSet) question(name int) []byte {
	var q []byte
	s := d.names[name]
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			q = append(q, byte(i-start))
			q = append(q, s[start:i]...)
			start = i + 1
		}
	}
	return append(q, 0, 0, 1, 0, 1) // root, QTYPE A, QCLASS IN
}

func (d dnsSet) query(name int) []byte {
	h := []byte{byte(name >> 8), byte(name), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	return append(h, d.question(name)...)
}

// answer carries the A record of the name's server: DNS answers are one
// of the sources of names an IP hosts.
func (d dnsSet) answer(name int, _ bool) []byte {
	h := []byte{byte(name >> 8), byte(name), 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0}
	m := append(h, d.question(name)...)
	srv := name % 400
	m = append(m, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 198, 51, byte(srv/250), byte(srv%250+1))
	return m
}

// quicNoise is a QUIC v1 long-header datagram with an undecryptable body:
// it exercises the QUIC path without a ClientHello.
func quicNoise(body []byte, f *flowSpec, fromServer bool) []byte {
	out := make([]byte, len(body))
	copy(out, body)
	out[0] = 0xc3
	binary.BigEndian.PutUint32(out[1:], 1)
	out[5] = 8
	binary.BigEndian.PutUint16(out[6:], f.cport)
	if fromServer {
		out[0] = 0xe3
	}
	return out
}
