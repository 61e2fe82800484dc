// Package config owns steward.yaml: the configuration schema (Go types that
// also generate the JSON Schema and docs/configuration.md), loading with
// includes, strict decoding that reports every problem as file:line:col at
// once, defaults, semantic validation and secret references (env:NAME,
// file:PATH).
package config
