// Package dumpfmt defines dhis2-life's database stream: pg_dump's schema archive, each table's
// COPY data and a trailer, framed by byte stuffing (never by lengths) so that restic's
// content-defined chunking still deduplicates unchanged data from day to day.
package dumpfmt
