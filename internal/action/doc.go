// Package action is the one door for change: every operation that changes
// production (a data fix, a grant, a real restore, a quarantine, a deploy
// gate) is an Action that is planned (dry run), checked against the approval
// policy, approved by people (or, loudly, broken glass for), executed,
// verified and audited. Kinds implement Kind; the Pipeline owns state,
// policy, approvals, audit and notifications, so no kind can bypass them.
package action
