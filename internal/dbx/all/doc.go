// Package all registers Steward's built-in database engines in one place.
package all
