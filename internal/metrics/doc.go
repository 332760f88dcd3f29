// Package metrics keeps dhis2-life's gauges and counters in a prometheus/client_golang
// registry of their own and exposes them in the Prometheus text format: to /metrics over HTTP
// (promhttp) and to node_exporter textfiles (written atomically), byte-identical to each other.
package metrics
