// Package packetread reads an archived packets/ dataset (written by
// sink.Dataset.WritePackets) back into schemas.PacketMeta batches, so the
// current detectors can be re-run over old captures without the captures
// (tamperscope batch).
//
// Order is what the analyzer needs: each flow's packets in capture order.
// Partitions (date=/hour= directories) are read one after the other in
// path order, which is time order; the files of one partition are merged
// by timestamp, a k-way merge that keeps each file's own row order, so one
// writer's file comes back exactly as written and files of several writers
// (analyzer instances sharing an hour) interleave by packet time. Packets
// whose timestamps cross an hour boundary out of order in the original
// capture come back in partition order.
//
// Bad input never stops a run: a file that cannot be opened, is not a
// packets file or fails part-way is reported and counted, the rows before
// the failure are kept; a row that does not decode is counted and skipped.
package packetread
