// Package auth owns users, roles, permissions and API tokens: creating users
// and tokens (random, shown once, stored as SHA-256), authenticating a token
// into a Principal, and deciding what a principal may do. Every change it
// makes is recorded through the audit function it is given.
package auth
