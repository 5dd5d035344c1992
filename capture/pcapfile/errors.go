package pcapfile

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is. Open fails with ErrNotCapture or
// ErrUnsupportedVersion (or capture.ErrUnsupportedLinkType); Next ends the
// stream with a *RecordError wrapping ErrTruncated, ErrCorrupt or
// ErrUnsupportedVersion.
var (
	// ErrNotCapture: the input is empty or starts with no known magic.
	ErrNotCapture = errors.New("not a pcap or pcapng capture")
	// ErrUnsupportedVersion: a pcap header or pcapng section header carries a
	// format version this reader does not know.
	ErrUnsupportedVersion = errors.New("unsupported capture format version")
	// ErrTruncated: the input ends inside a header or record.
	ErrTruncated = errors.New("truncated capture")
	// ErrCorrupt: a record's framing is impossible (length beyond
	// Options.MaxRecordLen, block length not a multiple of 4, mismatched
	// trailer), so nothing after it can be trusted.
	ErrCorrupt = errors.New("corrupt capture")
)

// RecordError locates where a capture stopped being readable. Every frame
// before the failing record has been delivered.
type RecordError struct {
	Name   string // file name given to Open or NewReader
	Kind   string // "record" for pcap, "block" for pcapng
	Index  uint64 // 1-based number of the failing record or block
	Offset int64  // byte offset of its start in the decompressed stream
	Err    error  // ErrTruncated, ErrCorrupt, ErrUnsupportedVersion or a read error
	Detail string
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("read capture %s: %s %d at byte %d: %v: %s", e.Name, e.Kind, e.Index, e.Offset, e.Err, e.Detail)
}

func (e *RecordError) Unwrap() error { return e.Err }
