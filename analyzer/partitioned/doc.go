// Package partitioned runs the analyzer over a partitioned stream (the
// Kafka topic of the distributed mode) and writes its datasets so that
// every flow row lands exactly once, across crashes, restarts and
// rebalances, without Kafka transactions (docs/kafka.md).
//
// Each assigned partition gets its own analyzer.Engine and sink.Dataset:
// partitioning by server address puts every packet of a flow, and every
// flow to one server, in one partition. At a checkpoint (every
// CheckpointInterval of wall time or CheckpointMessages messages) the
// flows and findings that ended since the last one are committed as the
// file set <topic>-p<partition>-<first>-<last> (the offsets of the
// messages processed meanwhile); only then is the partition's offset
// committed, and only up to the watermark: the first message that may
// hold a packet of a flow still open or of a detection window not judged
// yet. A message is past the watermark when its newest packet is older
// than the start of every open flow and every unjudged window (packet
// time, as everywhere in the analyzer), so resuming at the watermark
// replays every packet of every flow not yet written, and every flow the
// detectors still have to judge. So that a
// long-lived connection does not hold the watermark at its start, a
// checkpoint first splits the flows open longer than MaxOpen (end reason
// split: the record so far is written, later packets start a new flow);
// a resumed partition drops the packets its split records hold.
//
// Resuming re-emits some flows already written. When a partition's first
// message arrives, the flow and finding ids of its sets that cover that
// offset or later are loaded; a re-emitted flow or finding with a known id
// is not written again. A flow that is the tail of a known flow (same
// endpoints, inside its time span: its start was before the watermark),
// and a known flow whose window has a known digest (it was judged), are
// dropped before the detectors see them. Revocation (a rebalance, a
// shutdown) checkpoints and drops the partition's state without ending
// its open flows, so the next owner rebuilds them whole. Only the end of
// the stream (Close) ends open flows, after moving every engine to the
// newest packet time seen on any partition.
//
// A Names delivery holds copies of DNS responses whose flows live in
// other partitions; its rows go to the engine's ObserveDNS, so IP-block
// collateral names do not depend on which partition the resolver is in.
// A clock delivery (Delivery.ClockNs) moves its partition's packet time
// without packets (Engine.Advance), so a partition whose traffic stopped
// still ends its idle flows, judges its windows and commits its offset.
//
// The cross-address detectors (ip_blocking, throttling) compare an
// address with the others of its window, which live in other partitions:
// a partition's engine writes a digest of each window it closes (the
// digests dataset, in the same sets, with ids as findings have) instead
// of their findings, and detect.Aggregate over every partition's digests
// (tamperscope aggregate) makes them.
package partitioned
