// Package catalog is dhis2-life's local bbolt index: snapshot sets, drills, clones, archives,
// rollback points, upgrades and job runs. The repository is the truth; the snapshot index can
// be rebuilt from it.
package catalog
