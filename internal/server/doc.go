// Package server owns the HTTP side of `steward serve`: the JSON API under
// /api/v1, the server-rendered web UI (html/template, htmx and Pico CSS,
// embedded from web/), /metrics, /healthz and /readyz, token authentication
// of requests, and the one mapping from errors to HTTP statuses.
//
// Actions (when Options.Actions is set): /api/v1/actions and /api/v1/reviews
// expose the action pipeline, and the /approvals, /actions and /reviews
// pages let people vote with a form. The pipeline decides who may do what
// and audits every change and refusal; handlers only authenticate, decode
// and map its errors through errorStatus. Votes record where they came
// from: via "api", "ui" or "slack".
//
// Access grants (when the pipeline has the access.grant kind):
// /api/v1/access/grants requests, lists, shows and revokes grants, and
// .../{action_id}/issue, like the "Issue credentials" form on an approved
// grant's page, executes the grant for its requester only and returns the
// connection string in that one no-store answer. It is never stored, logged
// or audited; a second issue is 409 "already issued".
//
// Authentication: every /api/v1 call and every UI page needs an API token,
// as "Authorization: Bearer <token>" or in the steward_token cookie that
// /login sets (HttpOnly, SameSite=Strict, Secure under TLS). Authenticated
// tokens are cached by their SHA-256 for tokenCacheTTL (3s) and never past
// their expiry, so a revoked token or a disabled user stops working within
// 3 seconds on every replica. Failures are never cached. The UI's CSRF
// defence is threefold: the SameSite=Strict cookie, the refusal of
// cross-origin state-changing requests (http.CrossOriginProtection), and a
// CSRF token on every cookie-authenticated post (csrf.go: an HMAC keyed
// with the cookie, in a hidden form field or htmx's X-CSRF-Token header).
//
// UI pages (docs/ui.md): the overview at / (readiness scores, controls that
// need work, pending approvals, overdue reviews), services and a service
// (controls, backups, drills with an SVG RTO/RPO chart, check trends,
// fixes, grants, probes, contacts; svg.go draws the charts), drills, probes,
// approvals (votes swap the action's card with htmx), actions, reviews and
// the audit log (filters, verification cached for a minute, the last
// checkpoint). The readiness scorecard comes from Options.Scorecard.
//
// The one exception is POST /api/v1/slack/interactions, Slack's button
// callback: it carries no token and is authenticated by Slack's request
// signature (the signing secret of a slack channel, the timestamp within 5
// minutes); the Slack member id is mapped to a Steward user by users[].slack
// and that user must exist in the store and not be disabled. Refusals are
// explained in the 200 ephemeral reply Slack expects; attempts refused
// before the pipeline (unmapped, unknown or disabled users) are audited as
// "denied" with the actor slack:<member id>.
//
// /metrics needs a token with the read permission like every other
// endpoint but /healthz and /readyz; Prometheus sends it with
// `authorization: {credentials_file: …}` in the scrape config.
//
// Service responses are computed once per configuration (New and SetConfig)
// and served from memory; database URLs are never part of them, only whether
// one is set and, for a secret reference, the reference text (env:NAME).
package server
