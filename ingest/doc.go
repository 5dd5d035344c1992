// Package ingest is the capture half of the pipeline: it pulls frames from
// a capture.Source, decodes them into schemas.PacketMeta, keeps a payload
// snapshot only of the first data bytes of each flow direction (the
// snapshot policy, identical for every transport so that in-process and
// Kafka runs see the same packets), and publishes batches to a transport.
//
// Frames that cannot be decoded at all are counted by reason and skipped;
// partially decoded ones (later fragments, unknown transports) are still
// published so the analyzer can account their bytes.
package ingest
