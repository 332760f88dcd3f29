// Package s3 talks to S3-compatible storage with minio-go: it parses restic S3 repository URLs,
// probes endpoints and credentials in bounded time, and (for the archive tier) manages buckets,
// object lock and archive objects.
package s3
