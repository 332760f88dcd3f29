// Package app assembles dhis2-life's parts from a loaded configuration — logger, restic
// repository, catalogue, S3 preflight — for the CLI and the daemon.
package app
