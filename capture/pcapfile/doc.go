// Package pcapfile reads capture files — classic pcap and pcapng, plain or
// gzip- or zstd-compressed — as a capture.Source, in pure Go.
//
// The format is detected from the first bytes, never the file name: a gzip
// or zstd magic inserts a decoder, then the pcap magic (micro- or
// nanosecond, either byte order) or a pcapng Section Header Block picks the
// parser. pcapng files may hold several sections, each with its own byte
// order, and several interfaces per section with their own link type,
// if_tsresol (decimal or binary) and if_tsoffset. Enhanced, Simple and the
// obsolete Packet Blocks yield frames; every other block is skipped.
// Frame.Iface numbers interfaces across sections in file order, so for a
// one-section file it is the pcapng interface id; pcap frames are on 0.
// A Simple Packet Block has no timestamp and takes the previous packet's.
//
// Reading is zero-copy. On Linux, Open maps a plain regular file into
// memory and parses the mapping in place, handing the pages behind the
// reader back every 8 MiB so resident memory stays small; streams (NewReader,
// pipes), compressed files and other systems are parsed from a 1 MiB
// buffer refilled from the input.
// Frame.Data aliases the mapping or the buffer until the next call to Next.
// Next allocates nothing. A mapped file that another process truncates
// faults on access; ingest.Run turns that fault into an error.
//
// Errors follow capture.Source: an input that is no readable capture fails
// in Open; a damaged tail ends the stream with a *RecordError naming the
// record and byte offset, after every frame before it was delivered.
// errors.Is tells ErrTruncated, ErrCorrupt and ErrUnsupportedVersion apart.
// Packets on interfaces the caller cannot decode (Options.LinkTypes) or on
// undeclared interfaces are skipped and counted in Stats.Skips.
//
// It is the file source of the pipeline in docs/design/001-pipeline.md.
package pcapfile
