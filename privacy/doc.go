// Package privacy keeps tamperscope's records to what censorship analysis
// needs (docs/privacy.md):
//
//   - Pseudonymizer replaces vantage-local addresses (the capture host's own
//     addresses and the local networks behind it) in every decoded packet
//     with their Crypto-PAn pseudonyms (package cryptopan) before the packet
//     leaves the capture process. Remote (server) addresses are kept: they
//     are what a finding is about. Pseudonyms are prefix-preserving and
//     stable for one key, so flows, subnets and per-client counts still
//     work; only the key holder can link a pseudonym back.
//   - LoadOrCreateKey manages the key file: 32 random bytes, created with
//     mode 0600 and refused when other users can read it.
//   - StripPayload drops payload snapshots from a batch before it is
//     archived, so the packets/ dataset keeps only extracted fields unless
//     the operator asks for payloads.
//
// A Pseudonymizer implements ingest.Anonymizer; it is applied right after
// decode, so the snapshot policy, transports, the analyzer and every
// dataset see only pseudonyms.
package privacy
