// Package capture defines where packets come from. A Source yields raw link
// layer frames (pcap/pcapng files, AF_PACKET); decoding them into
// schemas.PacketMeta is analyzer/decode's job, so every source feeds the one
// analyzer code path (docs/design/001-pipeline.md).
package capture
