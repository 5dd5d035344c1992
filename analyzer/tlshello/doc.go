// Package tlshello parses the first TLS handshake messages of a flow from
// plain bytes: the client's ClientHello and the server's ServerHello with,
// for TLS 1.2 and older, the leaf certificate of the flight that follows.
//
// The model is the start of one TCP byte stream. The caller reassembles the
// first data bytes of each direction in sequence order and calls
// ParseClientHello or ParseServerHello on the prefix it holds; the parser
// walks TLS records, joins a handshake message that spans several records
// (post-quantum key shares push ClientHellos to 1.5-11 KB) and, when the
// prefix ends too early, returns an error that answers errors.Is(err,
// ErrIncomplete) and carries, as *IncompleteError, a lower bound of the bytes
// still missing, so the caller can wait for more segments instead of
// guessing. A QUIC Initial carries the ClientHello in CRYPTO frames without
// the record layer; ParseClientHelloHandshake takes that stream.
//
// The parsers run on the first bytes of every flow, most of which are not
// TLS at all, so a payload that does not start like a handshake record is
// rejected after a few byte comparisons and without allocation
// (LooksLikeClientHello is the same check as a predicate). Results never
// alias the input: the few strings and slices of a parsed hello are
// allocated once per flow.
//
// ClientHello.JA4 is the JA4 client fingerprint as specified by FoxIO
// (technical_details/JA4.md in github.com/FoxIO-LLC/ja4): GREASE values are
// ignored everywhere, extensions are sorted without SNI and ALPN, and
// signature algorithms keep their order. A client build sends the same
// lists on every connection, so the fingerprints of recent lists are kept
// in a small memo shared by all goroutines (1024 entries, lock-free), and a
// repeated hello costs its sorting and a lookup instead of the hex
// encoding and two SHA-256 sums (ParseClientHello: ~790 to ~490 ns).
//
// The results fill the TLS columns of schemas.FlowRecord (SNI, ALPN,
// TLSVersion, JA4, ECH, ServerTLSVersion, ServerCipher, CertSubject,
// CertIssuer), which the SNI-filtering and interception detectors compare
// across flows to one server IP. The leaf certificate's issuer is what makes
// TLS interception visible (a national root such as Kazakhstan's Qaznet);
// certificates are encrypted from TLS 1.3 on, so ServerHello reports them
// only for TLS 1.2 and older.
package tlshello
