// Package restore restores snapshot sets into a target database and directory (schema,
// then data, then indexes and constraints in parallel) and runs restore drills that prove a
// set at DHIS2 level.
package restore
