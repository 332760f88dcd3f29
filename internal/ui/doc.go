// Package ui formats dhis2-life's human output: sizes, durations, ages, tables, and a progress
// bar on terminals (plain periodic log lines otherwise).
package ui
