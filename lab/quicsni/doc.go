// Package quicsni reads the server name from a client's QUIC version 1
// Initial packet. Initial packets are encrypted with keys derived from the
// destination connection ID alone (RFC 9001, section 5.2), so an on-path
// censor — and the lab's injector — can decrypt them: remove header
// protection, open the AES-128-GCM payload, gather the CRYPTO frames that
// start the crypto stream and read server_name from the ClientHello.
//
// Input is untrusted: every length is checked and malformed packets give an
// error, never a panic. A ClientHello cut off after the server_name
// extension still yields the name.
package quicsni
