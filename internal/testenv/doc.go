// Package testenv starts the real services integration tests need — a throwaway PostgreSQL 15
// cluster with PostGIS and a MinIO server — and fails the test loudly when they cannot run.
package testenv
