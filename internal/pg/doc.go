// Package pg holds dhis2-life's PostgreSQL plumbing: connections whose passwords come from
// files, running pg tools without secrets in argv, DHIS2 introspection (flyway, table classes,
// exclusion rules) and cluster control (pg_ctl data directories and postgresql-common clusters).
package pg
