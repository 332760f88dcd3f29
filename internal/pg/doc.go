// Package pg holds dhis2-life's PostgreSQL plumbing: connections whose passwords come from
// files, running pg_dump/pg_restore without secrets in argv, and DHIS2 introspection (flyway
// version, table classes, ordering and exclusion rules per DHIS2 version).
package pg
