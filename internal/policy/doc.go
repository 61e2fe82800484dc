// Package policy is the approval policy engine: it decides which approval
// rule applies to a proposed action, whether the votes cast so far satisfy
// it, and whether a change-freeze window is active. It is pure logic over
// config.Policies; the action pipeline stores the votes and acts on the
// decisions.
//
// The package also defines policy test files (YAML cases that describe an
// action, votes and the expected decision), which `steward policy test`
// runs so that policies can be tested in CI.
package policy
