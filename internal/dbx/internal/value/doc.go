// Package value renders a single SQL value as the text Engine.QueryValue
// returns: NULL as "", times in RFC 3339 UTC, bytes as text, numbers as
// their shortest decimal form.
package value
