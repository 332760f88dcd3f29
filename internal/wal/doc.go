// Package wal archives PostgreSQL WAL files in the repository's bucket: it names, compresses,
// encrypts (authenticated, key derived from the repository password) and pushes/fetches them.
package wal
