// Package slack implements the Slack channel: messages are posted to an
// incoming webhook as Block Kit (header, text, fields, and Approve/Reject
// buttons for pending actions). It also verifies Slack's signed requests
// (VerifyRequest) and parses the button clicks they carry
// (ParseInteraction), for the server's interactivity endpoint.
package slack
