// Package lock gives dhis2-life per-instance job locks: kernel file locks (flock) in state_dir,
// released by the kernel when a process dies, so a killed run never leaves a lock behind.
package lock
