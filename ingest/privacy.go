package ingest

import "github.com/tamperscope/tamperscope/schemas"

// Anonymizer rewrites a decoded packet in place (privacy.Pseudonymizer
// replaces vantage-local addresses). Run calls it on every published
// packet right after decode, before the snapshot policy and the transport
// see the packet, so nothing leaves the capture process unanonymized. It
// must not keep p and, on the hot path, should not allocate.
type Anonymizer interface {
	Anonymize(p *schemas.PacketMeta)
}
