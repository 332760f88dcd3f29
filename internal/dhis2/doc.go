// Package dhis2 holds what dhis2-life knows about DHIS2's database: schema generations and
// flyway, regenerable table classes and dump order, required extensions, and scrub rules.
package dhis2
