// Package sysunit writes the systemd service unit of dhis2-life from a configuration: the
// sandbox (read-only and read-write paths, ProtectHome, hooks' needs) derived from every path the config names.
package sysunit
