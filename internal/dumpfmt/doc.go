// Package dumpfmt defines dhis2-life's database stream: pg_dump's schema archive, each table's
// COPY data and a trailer, framed by byte stuffing (never by lengths) so that restic's
// content-defined chunking still deduplicates unchanged data from day to day.
//
// # The stream format
//
// This is the one description of the format; the database part of every snapshot set
// (restic snapshot tagged part:db, file db.stream) holds one stream.
//
//	stream  = Magic (section | cut | pad)* ESC 'Z'
//	Magic   = "DHIS2LIFE-DBSTREAM 2\n"   (format 1, "DHIS2LIFE-DBSTREAM 1\n", has no cuts or pads)
//	section = ESC 'H' header ESC 'B' body ESC 'E'
//	cut     = ESC 'C' marker              (marker: 64 bytes, none of them ESC)
//	pad     = ESC 'P' text                (text: any bytes but ESC, up to the next ESC)
//	ESC     = the byte 0xFF
//
// Cuts and pads carry no data; readers skip them. They exist for restic (since issue 16,
// format 2). The producer writes a cut after the schema section and after every table
// section, with a marker solved for the repository's chunker polynomial (CutMarker) so that
// restic's content-defined chunker ends a chunk right after it whenever the chunk holds its
// minimum 512 KiB by then. After a table of 2 MiB and more (whose tail is what grows from day
// to day) it writes a long cut instead: cut, pad (512 KiB of text in which the chunker finds
// no cut, NewCuts), cut — the second cut always ends a chunk, also when restic cut less than
// 512 KiB before the first. A table whose rows did not change then starts a chunk at the same
// place every day and deduplicates, however much the section before it grew; without cuts
// the grown tail of one table (event's new rows, audit's) shared a chunk with the start of
// the next, and both were stored again. The pad is the same text every time and costs restic
// almost nothing compressed. A dhis2-life older than format 2 refuses a format-2 stream ("not
// a dhis2-life database stream"): restore it with this version or newer.
//
// The header is JSON (see Header): {"kind": K, "schema": S, "name": N, "columns": [...],
// "order_by": [...]}. The sections come in this order:
//
//  1. kind "schema", once: the body is `pg_dump --format=custom --compress=0
//     --schema-only --snapshot=…` of the database, i.e. every definition (pre-data:
//     extensions, types, tables, functions, views; post-data: indexes, constraints,
//     triggers), no data. Since issue 16 the archive header's creation time is fixed at
//     2000-01-01 00:00:00 (the stream's trailer holds the real time), so the stream's first
//     restic chunk no longer changes every day. `pg_restore --list`, `--section=pre-data` and `-f -` read it.
//  2. kind "table", once per dumped table, in the producer's order (since issue 16: tables
//     of 2 MiB and more by schema and name, then the smaller ones, largest size class first,
//     so the smallest sit next to the trailer; before, all by schema and name — readers must
//     accept any order): the body is the
//     output of COPY (SELECT columns FROM ONLY schema.name ORDER BY order_by) TO STDOUT,
//     the COPY text format, which is exactly what `COPY schema.name (columns) FROM stdin`
//     reads. Columns lists the table's non-generated columns in order. Tables whose data
//     is excluded as regenerable (analytics*, resource tables, …) have no section: their
//     definitions are in the schema archive, and the trailer lists them.
//  3. kind "trailer", once: the body is manifest.Trailer as JSON — the exported snapshot
//     and its time, server and DHIS2 (flyway) versions, extensions, excluded tables with
//     the rule that excluded each, per-table row counts (from the COPY command tags) and
//     bytes, and every sequence's last_value and is_called.
//
// The producer writes the whole stream from one REPEATABLE READ transaction whose
// snapshot pg_dump shares, so schema, rows and sequences are one consistent state. A
// stream without its end marker (ESC 'Z') is incomplete and is refused (ErrCorrupt).
//
// All text is UTF-8 with DateStyle ISO, IntervalStyle postgres and extra_float_digits 3.
// `dhis2-life export` turns a stream into a plain SQL script (pre-data, a COPY block per
// table section, setval per trailer sequence, post-data) or a pg_dump custom archive.
package dumpfmt
