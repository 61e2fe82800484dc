// Package gate implements the deploy.gate action kind: a CI pipeline asks
// Steward before deploying, and the deploy proceeds only once the action is
// approved under the service's policy (like required reviewers on
// deployment environments, but for any CI system).
package gate
