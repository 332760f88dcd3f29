// Package faulttable owns the fault suite's table: fault tests record one row per scenario as a
// JSON line in $DHIS2_LIFE_FAULT_TABLE, and cmd/faulttable renders the rows as Markdown.
package faulttable
