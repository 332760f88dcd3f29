// Package snapshot takes snapshot sets: the database stream (pg_dump schema plus ordered COPY
// data from one exported snapshot) into restic, then the DHIS2 file store, then the manifest.
package snapshot
