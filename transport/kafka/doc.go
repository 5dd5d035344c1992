// Package kafka is the distributed transport: the capture half publishes
// PacketBatches to a Kafka topic and the analyzer half consumes them in a
// consumer group (docs/design/001-pipeline.md, "Partitioning" and
// "Batching").
//
// A message is one schemas/wire encoding of rows that share a partition.
// Rows are partitioned by the remote (server-side) address, so every packet
// of a flow and every flow to one server IP meet in one analyzer. The
// Publisher never blocks capture: it buffers encoded messages up to a byte
// limit, retries in order while the broker is unreachable, and counts what
// it had to drop or give up (PublisherStats) — loss is reported, never
// silent, and Close fails when there was any. A partition that has had no
// row for ClockEvery of packet time is sent a clock message (HeaderClock),
// which moves its analyzer's packet time on.
//
// The Subscriber commits offsets only when told the rows are durable
// (Commit), and tells the caller when partitions are assigned or revoked,
// in stream order, so the analyzer can flush the flow state of a revoked
// partition and commit before another member takes it over. A message that
// does not decode goes to a dead-letter topic with the reason in a header,
// and consumption goes on.
//
// Every connection uses the TLS and SASL (PLAIN, SCRAM) settings of a
// Security, whose secrets come from files or the environment.
// scripts/kafka.sh runs a single-node broker for development and tests.
//
// Through that broker on the 2-core development machine (broker, producer
// and consumer sharing it), 2 M capture-like rows into 4 partitions,
// LZ4, ~50 bytes a row on the wire: 1.77 M rows/s published until every
// row was acknowledged, 7.2 M rows/s consumed
// (eval "$(scripts/kafka.sh up)"; go test -run '^$' -bench Throughput
// -benchtime=1x ./transport/kafka).
package kafka
