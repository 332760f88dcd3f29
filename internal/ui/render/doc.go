// Package render prints each command's result as text or JSON: one renderer per command, so
// that cmd/dhis2-life only wires flags to a lifecycle function and its renderer.
package render
