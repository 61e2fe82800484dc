// Package notifytest is the conformance suite every notification channel
// type passes (Run), and the loopback HTTP receiver the HTTP channels' tests
// share. It is imported by tests only.
package notifytest
