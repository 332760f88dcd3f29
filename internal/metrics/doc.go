// Package metrics keeps dhis2-life's gauges and counters and writes them in the Prometheus
// text exposition format, to /metrics over HTTP and to node_exporter textfiles (atomically).
package metrics
