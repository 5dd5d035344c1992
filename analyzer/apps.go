package analyzer

import (
	"bytes"
	"errors"
	"strings"

	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/analyzer/httpreq"
	"github.com/tamperscope/tamperscope/analyzer/quic"
	"github.com/tamperscope/tamperscope/analyzer/tlshello"
	"github.com/tamperscope/tamperscope/schemas"
)

// ParseStats counts application parser outcomes.
type ParseStats struct {
	ClientHellos  uint64
	ServerHellos  uint64
	HTTPRequests  uint64
	QUICInitials  uint64 // client Initials decrypted
	QUICHellos    uint64 // ClientHellos read from QUIC CRYPTO data
	DNSAnswers    uint64
	Malformed     uint64 // payloads a parser recognised but could not parse
	QUICUndecrypt uint64 // long-header datagrams that did not decrypt as Initials
}

// app is what the parsers learned about one flow.
type app struct {
	proto        string // tls, quic, http
	hello        bool   // client side parsed
	srvDone      bool
	ch           helloFields
	host, method string
	quicVersion  uint32
	quic1RTT     bool
	sh           tlshello.ServerHello
	quic         *quic.Flow
}

// helloFields is what a flow record keeps of a ClientHello.
type helloFields struct {
	sni, alpn, version, ja4 string
	ech                     bool
}

func helloFieldsOf(ch *tlshello.ClientHello) helloFields {
	return helloFields{
		sni:     ch.ServerName,
		alpn:    alpnField(ch.ALPN),
		version: tlsVersionName(ch.Version()),
		ja4:     ch.JA4,
		ech:     ch.HasECH || ch.HasESNI,
	}
}

// alpnField is the ALPN column's value: the protocols offered,
// comma-separated, without a new string for the lists browsers offer.
func alpnField(protos []string) string {
	switch {
	case len(protos) == 1:
		return protos[0]
	case len(protos) == 2 && protos[0] == "h2" && protos[1] == "http/1.1":
		return "h2,http/1.1"
	}
	return strings.Join(protos, ",")
}

// apps holds per-flow parser state in a slice parallel to the flow
// table's slots, so looking it up costs an index, not a map.
type apps struct {
	s []app
}

func (a *apps) of(st *flow.State, isNew bool) *app {
	i := st.Slot()
	if i >= len(a.s) {
		a.s = append(a.s, make([]app, i+1-len(a.s)+len(a.s)/2)...)
	}
	if isNew {
		a.s[i] = app{}
	}
	return &a.s[i]
}

func (e *Engine) parsePayload(st *flow.State, a *app, dir flow.Dir, p *schemas.PacketMeta) {
	switch p.Proto {
	case schemas.ProtoTCP:
		if st.Collecting(dir) {
			e.parseTCP(st, a, dir)
		}
	case schemas.ProtoUDP:
		e.parseUDP(a, dir, p)
	}
}

func (e *Engine) parseTCP(st *flow.State, a *app, dir flow.Dir) {
	b := st.Stream(dir)
	if len(b) == 0 {
		return
	}
	// Without the SYN the table may have guessed the client wrong (two
	// "server" ports): a request or ClientHello says who the client is.
	midstream := st.SynRTTNs == 0 && st.HandshakeRTTNs == 0
	if dir == flow.FromClient || midstream && !a.hello && a.proto == "" && (tlshello.LooksLikeClientHello(b) || httpreq.LooksLikeRequest(b)) {
		e.parseRequest(st, a, dir, b)
		return
	}
	if a.proto != "tls" || a.srvDone {
		st.StopCollect(dir)
		return
	}
	sh, err := tlshello.ParseServerHello(b)
	switch {
	case err == nil:
		a.sh, a.srvDone = sh, true
		e.parse.ServerHellos++
		st.StopCollect(dir)
	case errors.Is(err, tlshello.ErrIncomplete):
		if sh.CipherSuite != 0 {
			a.sh = sh // keep what is complete in case no more comes
		}
	default:
		e.parse.Malformed++
		st.StopCollect(dir)
	}
}

// parseRequest reads what a client sends first: a TLS ClientHello or an
// HTTP/1.x request, recognised by content on any port.
func (e *Engine) parseRequest(st *flow.State, a *app, dir flow.Dir, b []byte) {
	if a.hello {
		st.StopCollect(dir)
		return
	}
	if n, ok := socks5Prefix(b); ok {
		b = b[n:] // TLS or HTTP through a SOCKS5 proxy: read what follows
	} else if n < 0 {
		return // a SOCKS5 handshake, not complete yet
	}
	switch {
	case tlshello.LooksLikeClientHello(b):
		if h := e.hello; h != nil && bytes.Equal(b, e.helloOf) {
			// Prepare parsed these very bytes.
			a.proto, a.hello, a.ch = "tls", true, *h
			e.parse.ClientHellos++
			st.StopCollect(dir)
			return
		}
		ch, err := tlshello.ParseClientHello(b)
		switch {
		case err == nil:
			a.proto, a.hello = "tls", true
			a.setHello(&ch)
			e.parse.ClientHellos++
			st.StopCollect(dir)
		case errors.Is(err, tlshello.ErrIncomplete):
			a.proto = "tls"
		default:
			// A broken extension block still shows the name a censor's
			// DPI would read before the fault.
			e.parse.Malformed++
			a.proto, a.hello = "tls", true
			a.setHello(&ch)
			st.StopCollect(dir)
		}
	case httpreq.LooksLikeRequest(b):
		req, err := httpreq.Parse(b)
		switch {
		case err == nil:
			a.proto, a.hello = "http", true
			a.host, a.method = req.Host, req.Method
			e.parse.HTTPRequests++
			st.StopCollect(dir)
		case errors.Is(err, httpreq.ErrIncomplete):
			a.proto = "http"
		default:
			e.parse.Malformed++
			st.StopCollect(dir)
		}
	default:
		st.StopCollect(dir)
	}
}

func (e *Engine) parseUDP(a *app, dir flow.Dir, p *schemas.PacketMeta) {
	b := p.Payload
	if p.SrcPort == 53 || p.SrcPort == 5353 {
		if n := e.dns.addAnswer(b, e.nowNs); n > 0 {
			e.parse.DNSAnswers += uint64(n)
		}
		return
	}
	if dir == flow.FromClient && a.proto == "quic" && len(b) > 0 && b[0]&0x80 == 0 {
		a.quic1RTT = true
	}
	if a.hello || dir != flow.FromClient || len(b) < 7 {
		return
	}
	if b[0]&0x80 == 0 {
		// HTTP over UDP (SSDP) names hosts too.
		if httpreq.LooksLikeRequest(b) {
			if req, err := httpreq.Parse(b); err == nil {
				a.proto, a.hello, a.host, a.method = "http", true, req.Host, req.Method
				e.parse.HTTPRequests++
			}
		}
		return
	}
	if a.quic == nil {
		a.quic = &quic.Flow{}
	}
	in, err := a.quic.Add(&e.quicDec, b)
	switch {
	case errors.Is(err, quic.ErrNotInitial) || errors.Is(err, quic.ErrNotQUIC) || errors.Is(err, quic.ErrUnsupportedVersion):
		return
	case errors.Is(err, quic.ErrDecrypt) || errors.Is(err, quic.ErrTruncated):
		e.parse.QUICUndecrypt++
		return
	case err != nil:
		e.parse.Malformed++
		a.hello = true
		return
	}
	e.parse.QUICInitials++
	a.proto, a.quicVersion = "quic", in.Version
	hs, ok := a.quic.ClientHello()
	if !ok {
		return
	}
	a.hello = true
	ch, err := tlshello.ParseClientHelloHandshake(hs)
	if err != nil {
		e.parse.Malformed++
		return
	}
	e.parse.QUICHellos++
	a.setHello(&ch)
}

func (a *app) setHello(ch *tlshello.ClientHello) { a.ch = helloFieldsOf(ch) }

func (a *app) record(r *schemas.FlowRecord) {
	r.AppProto = a.proto
	r.SNI, r.ALPN, r.TLSVersion, r.JA4, r.ECH = a.ch.sni, a.ch.alpn, a.ch.version, a.ch.ja4, a.ch.ech
	r.HTTPHost, r.HTTPMethod = a.host, a.method
	if a.quicVersion != 0 {
		r.QUICVersion = hexDigits(uint64(a.quicVersion), 8)
		r.QUIC1RTT = a.quic1RTT
	}
	if a.sh.CipherSuite != 0 {
		r.ServerTLSVersion = tlsVersionName(a.sh.Version())
		r.ServerCipher = hexDigits(uint64(a.sh.CipherSuite), 4)
		r.CertSubject, r.CertIssuer = a.sh.LeafSubject, a.sh.LeafIssuer
	}
}

func tlsVersionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case 0x0300:
		return "ssl3.0"
	case 0x0301:
		return "tls1.0"
	case 0x0302:
		return "tls1.1"
	case 0x0303:
		return "tls1.2"
	case 0x0304:
		return "tls1.3"
	}
	return hexDigits(uint64(v), 4)
}

// hexDigits renders the n low hex digits of v, as %0<n>x does for a value
// of n digits; every flow record has one or two, which fmt makes costly.
func hexDigits(v uint64, n int) string {
	var b [16]byte
	for i := n - 1; i >= 0; i-- {
		b[i] = "0123456789abcdef"[v&15]
		v >>= 4
	}
	return string(b[:n])
}

// socks5Prefix recognises a client's SOCKS5 greeting and CONNECT request
// (RFC 1928) at the start of b and returns their length. n < 0 means b
// starts like one but is not complete yet.
func socks5Prefix(b []byte) (n int, ok bool) {
	if len(b) < 2 || b[0] != 5 || b[1] == 0 || b[1] > 8 {
		return 0, false
	}
	g := 2 + int(b[1])
	if len(b) < g+5 {
		return -1, false
	}
	r := b[g:]
	if r[0] != 5 || r[1] != 1 || r[2] != 0 {
		return 0, false
	}
	var addr int
	switch r[3] {
	case 1:
		addr = 4
	case 3:
		addr = 1 + int(r[4])
	case 4:
		addr = 16
	default:
		return 0, false
	}
	n = g + 4 + addr + 2
	if len(b) <= n {
		return -1, false
	}
	return n, true
}
