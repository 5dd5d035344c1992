// Package httpreq reads the request line and Host header of an HTTP/1.x
// request, and the status line of a response, from the first data bytes of
// a flow.
//
// The model is the start of one byte stream: the caller hands over the
// client's first bytes (reassembled in sequence order for TCP, one
// datagram for SSDP over UDP) and gets either a Request, ErrIncomplete
// (wait for more segments), ErrNotHTTP or an error matching ErrMalformed.
// Parsing stops as soon as the Host header has been read or the header
// block ends, because the Host is what an HTTP censor matches on and the
// rest of the request is not needed (nor kept: the design stores no more
// personal data than detection needs). Bare LF line ends are accepted, as
// servers and censors' DPI accept them.
//
// Parse runs on the first bytes of every flow, so anything that does not
// start with a known method is rejected by comparing a few bytes, without
// allocation; only a matching request allocates its target and Host
// strings. The Host feeds schemas.FlowRecord.HTTPHost, the key of the
// HTTP Host filtering detector; ParseResponse gives the status code that
// blockpage detectors compare.
package httpreq
