// Package manifest defines the snapshot-set manifest: the JSON document stored in the
// repository beside each set that says what was dumped, excluded and counted.
package manifest
