// Package kit owns the offline emergency kit: the sealed bundle of
// emergency credentials that a threshold of holders can open when Steward
// itself is down. It splits the kit key with Shamir secret sharing over
// GF(2^8), encrypts the bundle and every share with age, writes the kit
// directory with its printable runbook, and opens it again from decrypted
// shares without a config or a store.
package kit
