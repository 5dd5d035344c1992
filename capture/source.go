package capture

import "errors"

// Link types (LINKTYPE_* values from the pcap registry) that the decoder
// understands.
const (
	LinkNull     uint16 = 0   // BSD loopback, host-order address family
	LinkEthernet uint16 = 1   // Ethernet II with optional 802.1Q / 802.1ad tags
	LinkRaw      uint16 = 101 // raw IPv4 or IPv6
	LinkLoop     uint16 = 108 // OpenBSD loopback, network-order address family
	LinkSLL      uint16 = 113 // Linux cooked capture v1
	LinkIPv4     uint16 = 228
	LinkIPv6     uint16 = 229
	LinkSLL2     uint16 = 276 // Linux cooked capture v2
)

// Frame is one captured link-layer frame.
//
// Data aliases the source's buffer and is valid only until the next call to
// Next; copy it to keep it.
type Frame struct {
	TimestampNs int64
	LinkType    uint16
	Iface       uint32 // pcapng interface id, or ifindex for live sources
	CapLen      uint32
	WireLen     uint32
	Data        []byte
}

// Source yields frames in capture order. Next returns io.EOF at the end of
// the input and ErrNoFrame when a live source has nothing yet; any other
// error ends the source, with every frame before it already delivered (a
// corrupt tail keeps what was read).
type Source interface {
	Next(f *Frame) error
	Stats() Stats
	Close() error
}

// Stats counts what a source read and what it could not.
type Stats struct {
	Frames uint64 // frames delivered
	Bytes  uint64 // bytes of input consumed (compressed size for files)
	Drops  uint64 // frames the source lost (kernel or ring drops)
	Skips  uint64 // records skipped as unreadable
}

// ErrNoFrame is returned by live sources when their poll timeout passed
// without a frame: nothing is wrong, call Next again. It lets the caller
// flush what it holds while traffic is light.
var ErrNoFrame = errors.New("no frame within the poll timeout")

// ErrUnsupportedLinkType is returned (wrapped) by sources whose input uses
// a link type the decoder cannot read.
var ErrUnsupportedLinkType = errors.New("unsupported link type")
