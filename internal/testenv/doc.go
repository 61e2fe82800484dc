// Package testenv gives tests the real components they need: a fresh
// PostgreSQL database, a MariaDB database, or a clear skip when a component
// is missing. Under CI (CI=true) a missing component fails the test instead
// of skipping it.
package testenv
