// Package proc owns how dhis2-life's child processes and per-run scratch files live and die:
// children that die with their parent, environments without credentials, PID-named temp files.
package proc
