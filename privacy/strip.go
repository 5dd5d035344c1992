package privacy

import "github.com/tamperscope/tamperscope/schemas"

// StripPayload removes the payload snapshots of b's packets, keeping every
// extracted field (payload_len included): the packets/ dataset then holds a
// null payload column. Call it on a batch after the analyzer has processed
// it and before it is archived; the analyzer needs the snapshots to read
// SNI, Host and certificates.
func StripPayload(b *schemas.PacketBatch) {
	for i := range b.Packets {
		b.Packets[i].Payload = nil
	}
	b.Arena = b.Arena[:0]
}
