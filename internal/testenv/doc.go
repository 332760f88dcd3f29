// Package testenv starts the real services integration tests need — a throwaway PostgreSQL 15
// cluster with PostGIS, a MinIO server and a fault-injecting S3 proxy in front of it — and fails
// the test loudly when they cannot run.
package testenv
