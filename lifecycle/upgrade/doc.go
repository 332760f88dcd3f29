// Package upgrade owns the blue-green upgrades — PostgreSQL major (pg_upgrade), DHIS2 (green
// database + app slot + proxy switch, rehearsals) and OS checks — as persisted, resumable state machines.
package upgrade
