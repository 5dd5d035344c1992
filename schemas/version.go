package schemas

// Schema versions. A change to a record bumps its version; readers keep
// accepting older versions (see docs/datasets.md).
const (
	PacketMetaVersion = 1
	FlowRecordVersion = 1
	FindingVersion    = 1
	DigestVersion     = 1
)
