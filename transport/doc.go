// Package transport moves packet batches from the capture half to the
// analyzer half: in process (a channel, the embedded default) or through
// Kafka (transport/kafka). Both halves see the same interfaces, so the
// analyzer has one code path (docs/design/001-pipeline.md).
package transport
