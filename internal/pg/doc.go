// Package pg holds dhis2-life's PostgreSQL plumbing: connections whose passwords come from
// files, running pg_dump/pg_restore without secrets in argv, and catalogue introspection
// (tables, sequences, extensions); what is DHIS2-specific lives in internal/dhis2.
package pg
