package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/tamperscope/tamperscope/schemas"
)

// Version is the version of the message layout (column set, column types
// and their meaning) this package writes. A reader accepts only versions it
// knows; a change to the columns bumps it.
const Version = 1

// Metadata keys of the Arrow schema of every message.
const (
	MetaWireVersion       = "tamperscope.wire_version"
	MetaPacketMetaVersion = "tamperscope.packet_meta_version"
)

var (
	// ErrCorrupt: the message is not a well-formed packet batch (truncated,
	// damaged, not Arrow IPC, or columns that contradict each other).
	ErrCorrupt = errors.New("corrupt packet batch message")
	// ErrVersion: the message is well formed but of a wire or PacketMeta
	// version this decoder does not read.
	ErrVersion = errors.New("unsupported packet batch version")
)

// Column indexes; the order is part of the wire version.
const (
	colTimestamp = iota
	colVantage
	colIface
	colWireLen
	colIPVersion
	colSrc
	colDst
	colProto
	colTTL
	colIPID
	colIPLen
	colFrag
	colFragOff
	colSrcPort
	colDstPort
	colTCPFlags
	colSeq
	colAck
	colWindow
	colTCPOpts
	colMSS
	colWScale
	colTSVal
	colTSEcr
	colBadCsum
	colPayloadLen
	colPayload
	colICMPType
	colICMPCode
	colQSrc
	colQDst
	colQSrcPort
	colQDstPort
	colQProto
	numCols
)

// Addresses are netip.Addr.MarshalBinary bytes: empty for the zero Addr,
// 4 bytes for IPv4, 16 for IPv6 (4-in-6 stays 16), 16 plus the zone name
// for a zoned IPv6 address. That keeps every netip.Addr exactly.
var schema = arrow.NewSchema([]arrow.Field{
	colTimestamp:  {Name: "ts_ns", Type: arrow.PrimitiveTypes.Int64},
	colVantage:    {Name: "vantage", Type: arrow.BinaryTypes.String},
	colIface:      {Name: "iface", Type: arrow.PrimitiveTypes.Uint32},
	colWireLen:    {Name: "wire_len", Type: arrow.PrimitiveTypes.Uint32},
	colIPVersion:  {Name: "ip_version", Type: arrow.PrimitiveTypes.Uint8},
	colSrc:        {Name: "src", Type: arrow.BinaryTypes.Binary},
	colDst:        {Name: "dst", Type: arrow.BinaryTypes.Binary},
	colProto:      {Name: "proto", Type: arrow.PrimitiveTypes.Uint8},
	colTTL:        {Name: "ttl", Type: arrow.PrimitiveTypes.Uint8},
	colIPID:       {Name: "ip_id", Type: arrow.PrimitiveTypes.Uint32},
	colIPLen:      {Name: "ip_len", Type: arrow.PrimitiveTypes.Uint16},
	colFrag:       {Name: "frag", Type: arrow.PrimitiveTypes.Uint8},
	colFragOff:    {Name: "frag_off", Type: arrow.PrimitiveTypes.Uint16},
	colSrcPort:    {Name: "src_port", Type: arrow.PrimitiveTypes.Uint16},
	colDstPort:    {Name: "dst_port", Type: arrow.PrimitiveTypes.Uint16},
	colTCPFlags:   {Name: "tcp_flags", Type: arrow.PrimitiveTypes.Uint8},
	colSeq:        {Name: "seq", Type: arrow.PrimitiveTypes.Uint32},
	colAck:        {Name: "ack", Type: arrow.PrimitiveTypes.Uint32},
	colWindow:     {Name: "window", Type: arrow.PrimitiveTypes.Uint16},
	colTCPOpts:    {Name: "tcp_opts", Type: arrow.PrimitiveTypes.Uint8},
	colMSS:        {Name: "mss", Type: arrow.PrimitiveTypes.Uint16},
	colWScale:     {Name: "wscale", Type: arrow.PrimitiveTypes.Uint8},
	colTSVal:      {Name: "ts_val", Type: arrow.PrimitiveTypes.Uint32},
	colTSEcr:      {Name: "ts_ecr", Type: arrow.PrimitiveTypes.Uint32},
	colBadCsum:    {Name: "bad_csum", Type: arrow.FixedWidthTypes.Boolean},
	colPayloadLen: {Name: "payload_len", Type: arrow.PrimitiveTypes.Uint32},
	// Null is a nil Payload (no snapshot), an empty value a zero-length one.
	colPayload:  {Name: "payload", Type: arrow.BinaryTypes.Binary, Nullable: true},
	colICMPType: {Name: "icmp_type", Type: arrow.PrimitiveTypes.Uint8},
	colICMPCode: {Name: "icmp_code", Type: arrow.PrimitiveTypes.Uint8},
	colQSrc:     {Name: "quoted_src", Type: arrow.BinaryTypes.Binary},
	colQDst:     {Name: "quoted_dst", Type: arrow.BinaryTypes.Binary},
	colQSrcPort: {Name: "quoted_src_port", Type: arrow.PrimitiveTypes.Uint16},
	colQDstPort: {Name: "quoted_dst_port", Type: arrow.PrimitiveTypes.Uint16},
	colQProto:   {Name: "quoted_proto", Type: arrow.PrimitiveTypes.Uint8},
}, func() *arrow.Metadata {
	m := arrow.NewMetadata(
		[]string{MetaWireVersion, MetaPacketMetaVersion},
		[]string{strconv.Itoa(Version), strconv.Itoa(schemas.PacketMetaVersion)},
	)
	return &m
}())

// schemaMessage is the IPC schema message (continuation marker, length,
// flatbuffer) that starts every message of this version.
var schemaMessage = func() []byte {
	var w appendWriter
	iw := ipc.NewWriter(&w, ipc.WithSchema(schema))
	if err := iw.Close(); err != nil {
		panic(fmt.Sprintf("encode wire schema: %v", err))
	}
	n := binary.LittleEndian.Uint32(w.b[4:8])
	return w.b[:8+n]
}()
