// Package dhis2 holds what dhis2-life knows about DHIS2's database: schema generations and
// flyway, regenerable tables and dump order, extensions, scrub rules, where personal data lives.
package dhis2
