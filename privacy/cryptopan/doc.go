// Package cryptopan is Crypto-PAn, the keyed prefix-preserving address
// pseudonymization of Xu, Fan, Ammar and Moon ("Prefix-Preserving IP
// Address Anonymization", ICNP 2002): two addresses that share their first
// k bits map to two addresses that share exactly their first k bits, so
// subnets, routing prefixes and "same /24" questions survive while the
// addresses themselves do not.
//
// The construction is the one of the reference implementation: a 32-byte
// key is an AES-128 key and a 16-byte pad, the pad is encrypted once with
// the key, and bit i of the output is bit i of the input XOR the first bit
// of AES(first i input bits || remaining bits of the pad). IPv4 addresses
// take 32 encryptions, IPv6 addresses the same construction over 128 bits
// (as Yawning Angel's Go and the Rust implementations do), so outputs agree
// with other implementations given the same key.
//
// Traffic repeats a handful of vantage-local addresses constantly, so an
// Anonymizer keeps a direct-mapped cache of recent mappings: a hit costs a
// comparison, a miss 32 or 128 AES blocks. Anonymizer is not safe for
// concurrent use; Clone gives each goroutine its own cache over the same key.
//
// docs/privacy.md says where tamperscope applies it and how to manage keys.
package cryptopan
