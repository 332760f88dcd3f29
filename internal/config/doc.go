// Package config loads and validates dhis2-life's TOML configuration: the repository, the
// DHIS2 instances on this host, clone targets, retention, archive, schedule and notifiers.
package config
