// Package analyzer is the analyzer half of the pipeline: it takes packet
// batches from any transport, keeps the flow table (analyzer/flow), runs
// the application parsers on the first bytes of each flow (tlshello,
// httpreq, quic, DNS answers), judges every flow that ends with the
// per-flow detectors and hands flow records to the cross-flow detectors
// that emit findings (analyzer/detect).
//
// Everything is driven by packet time: replaying a capture gives the same
// records and findings as the live run that made it. See
// docs/design/001-pipeline.md.
package analyzer
