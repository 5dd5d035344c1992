package decode

import "errors"

// Reason says why a frame was not fully decoded. ReasonOK means it was.
type Reason uint8

const (
	ReasonOK                  Reason = iota
	ReasonUnsupportedLinkType        // link type the decoder does not read
	ReasonNotIP                      // ARP, LLDP, PPP control, unknown ethertype or address family: a skip, not damage
	ReasonTruncatedL2                // frame ends inside a link-layer or encapsulation header
	ReasonTruncatedIP                // frame ends inside an IPv4 header or an IPv6 header or extension header
	ReasonBadIPVersion               // version nibble does not match the header type announced below it
	ReasonBadIPHeaderLen             // IPv4 IHL below 5
	ReasonBadIPLength                // IP total or payload length shorter than the headers it covers
	ReasonFragLater                  // later IP fragment: IP fields only, Frag == FragLater
	ReasonUnknownTransport           // IP fields only: protocol not decoded (ESP, SCTP, no next header, ...)
	ReasonTruncatedIPPayload         // all headers decoded, but the IP length claims more bytes than the frame had on the wire
	ReasonTruncatedTCP               // IP fields filled; TCP header cut short
	ReasonBadTCPHeaderLen            // IP fields filled; TCP data offset below 5
	ReasonTruncatedUDP               // IP fields filled; UDP header cut short
	ReasonTruncatedICMP              // IP fields filled; ICMP header cut short
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonOK:                  "ok",
	ReasonUnsupportedLinkType: "unsupported-link-type",
	ReasonNotIP:               "not-ip",
	ReasonTruncatedL2:         "truncated-l2",
	ReasonTruncatedIP:         "truncated-ip",
	ReasonBadIPVersion:        "bad-ip-version",
	ReasonBadIPHeaderLen:      "bad-ip-header-len",
	ReasonBadIPLength:         "bad-ip-length",
	ReasonFragLater:           "frag-later",
	ReasonUnknownTransport:    "unknown-transport",
	ReasonTruncatedIPPayload:  "truncated-ip-payload",
	ReasonTruncatedTCP:        "truncated-tcp",
	ReasonBadTCPHeaderLen:     "bad-tcp-header-len",
	ReasonTruncatedUDP:        "truncated-udp",
	ReasonTruncatedICMP:       "truncated-icmp",
}

// String returns a stable lower-case name, usable as a metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown-reason"
}

// Partial reports whether a PacketMeta decoded with this reason still holds
// the innermost IP header's fields (addresses, protocol, TTL, ID, lengths,
// fragment info) and so can be accounted to a flow.
func (r Reason) Partial() bool {
	return r >= ReasonFragLater && r < NumReasons
}

// Truncated reports whether the frame ended inside a header.
func (r Reason) Truncated() bool {
	switch r {
	case ReasonTruncatedL2, ReasonTruncatedIP, ReasonTruncatedIPPayload, ReasonTruncatedTCP, ReasonTruncatedUDP, ReasonTruncatedICMP:
		return true
	}
	return false
}

// Error is the error Decode returns. Decode returns only the preallocated
// sentinels below, so a caller may compare with == or errors.Is.
type Error struct {
	Reason Reason
}

func (e *Error) Error() string { return "decode packet: " + e.Reason.String() }

// Is lets errors.Is match the group sentinels ErrTruncated and ErrPartial.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrTruncated:
		return e.Reason.Truncated()
	case ErrPartial:
		return e.Reason.Partial()
	}
	return false
}

// Group sentinels: errors.Is(err, ErrPartial) means the PacketMeta still
// carries the IP header's fields; errors.Is(err, ErrTruncated) means the
// frame ended inside a header (snaplen, damage).
var (
	ErrTruncated = errors.New("truncated")
	ErrPartial   = errors.New("partially decoded")
)

// One sentinel per reason.
var (
	ErrUnsupportedLinkType = &Error{ReasonUnsupportedLinkType}
	ErrNotIP               = &Error{ReasonNotIP}
	ErrTruncatedL2         = &Error{ReasonTruncatedL2}
	ErrTruncatedIP         = &Error{ReasonTruncatedIP}
	ErrBadIPVersion        = &Error{ReasonBadIPVersion}
	ErrBadIPHeaderLen      = &Error{ReasonBadIPHeaderLen}
	ErrBadIPLength         = &Error{ReasonBadIPLength}
	ErrFragLater           = &Error{ReasonFragLater}
	ErrUnknownTransport    = &Error{ReasonUnknownTransport}
	ErrTruncatedIPPayload  = &Error{ReasonTruncatedIPPayload}
	ErrTruncatedTCP        = &Error{ReasonTruncatedTCP}
	ErrBadTCPHeaderLen     = &Error{ReasonBadTCPHeaderLen}
	ErrTruncatedUDP        = &Error{ReasonTruncatedUDP}
	ErrTruncatedICMP       = &Error{ReasonTruncatedICMP}
)

var reasonErrs = [NumReasons]error{
	ReasonUnsupportedLinkType: ErrUnsupportedLinkType,
	ReasonNotIP:               ErrNotIP,
	ReasonTruncatedL2:         ErrTruncatedL2,
	ReasonTruncatedIP:         ErrTruncatedIP,
	ReasonBadIPVersion:        ErrBadIPVersion,
	ReasonBadIPHeaderLen:      ErrBadIPHeaderLen,
	ReasonBadIPLength:         ErrBadIPLength,
	ReasonFragLater:           ErrFragLater,
	ReasonUnknownTransport:    ErrUnknownTransport,
	ReasonTruncatedIPPayload:  ErrTruncatedIPPayload,
	ReasonTruncatedTCP:        ErrTruncatedTCP,
	ReasonBadTCPHeaderLen:     ErrBadTCPHeaderLen,
	ReasonTruncatedUDP:        ErrTruncatedUDP,
	ReasonTruncatedICMP:       ErrTruncatedICMP,
}

// ReasonOf returns the reason carried by an error from Decode: ReasonOK for
// nil. It does not allocate.
func ReasonOf(err error) Reason {
	if err == nil {
		return ReasonOK
	}
	if e, ok := err.(*Error); ok {
		return e.Reason
	}
	return NumReasons
}

// Stats counts decoded frames by reason.
type Stats struct {
	Frames  uint64
	Reasons [NumReasons]uint64 // indexed by Reason; Reasons[ReasonOK] counts full decodes
}
