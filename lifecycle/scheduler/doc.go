// Package scheduler runs lifecycle's jobs unattended: the cron loop of `dhis2-life daemon`, its
// Prometheus metrics and /status endpoint, the munin plugin output and the equivalent systemd units.
package scheduler
