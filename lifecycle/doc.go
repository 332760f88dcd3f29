// Package lifecycle runs dhis2-life unattended: the scheduler daemon and its job runner
// (snapshot, drill), run records, metrics, alerts, and the status report with RPO limits.
package lifecycle
