package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dhis2-life/dhis2-life/internal/config"
)

// ArchiveBucket is the archive tier's bucket: object-locked, storage-classed, multipart
// uploads with a bounded part size.
type ArchiveBucket struct {
	Client       *minio.Client
	Endpoint     string
	Bucket       string
	Prefix       string
	LockMode     string // "", COMPLIANCE, GOVERNANCE
	LockDays     int
	StorageClass string
	PartSize     uint64
	// Now is the clock for retain-until dates (nil = time.Now).
	Now func() time.Time
}

// NewArchiveBucket connects to the configured archive tier with credentials from env.
func NewArchiveBucket(a *config.Archive, env []string) (*ArchiveBucket, error) {
	if a == nil {
		return nil, errors.New("no [archive] table in the configuration: add one (see `dhis2-life config example`)")
	}
	c := CredentialsFromEnv(env)
	if a.Region != "" {
		c.Region = a.Region
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return nil, errors.New("no S3 credentials for the archive bucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in repository.env_file or the environment")
	}
	cl, err := NewClient(a.Endpoint, a.Secure, c)
	if err != nil {
		return nil, err
	}
	ps := a.PartSizeMB
	if ps == 0 {
		ps = 16
	}
	return &ArchiveBucket{Client: cl, Endpoint: a.Endpoint, Bucket: a.Bucket, Prefix: a.Prefix, LockMode: a.LockMode,
		LockDays: a.LockDays, StorageClass: a.StorageClass, PartSize: uint64(ps) << 20}, nil
}

func (b *ArchiveBucket) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Check verifies that the bucket exists and, when a lock mode is configured, that object lock
// is enabled on it. Errors say what is missing and how to fix it.
func (b *ArchiveBucket) Check(ctx context.Context) error {
	ok, err := b.Client.BucketExists(ctx, b.Bucket)
	if err != nil {
		return fmt.Errorf("archive bucket: %w", describe(err, b.Endpoint, b.Bucket))
	}
	if !ok {
		return fmt.Errorf("archive bucket %q does not exist on %s: create it (with object lock when archive.lock_mode is set, e.g. `mc mb --with-lock`)", b.Bucket, b.Endpoint)
	}
	if b.LockMode == "" {
		return nil
	}
	enabled, _, _, _, err := b.Client.GetObjectLockConfig(ctx, b.Bucket)
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "ObjectLockConfigurationNotFoundError" || code == "ObjectLockConfigurationNotFound" {
			return fmt.Errorf("archive bucket %q has no object lock, but archive.lock_mode = %q: object lock can only be enabled when a bucket is created; create a new bucket with object lock (`mc mb --with-lock`) and point archive.bucket at it, or remove lock_mode", b.Bucket, b.LockMode)
		}
		return fmt.Errorf("archive bucket %q: reading its object lock configuration: %w", b.Bucket, describe(err, b.Endpoint, b.Bucket))
	}
	if enabled != "Enabled" {
		return fmt.Errorf("archive bucket %q has object lock %q, but archive.lock_mode = %q: create a bucket with object lock enabled", b.Bucket, enabled, b.LockMode)
	}
	return nil
}

// Object is a stored archive object.
type Object struct {
	Name        string
	VersionID   string
	Size        int64
	RetainUntil time.Time
}

// Put uploads r as name (prefix prepended by the caller) with multipart parts of PartSize
// bytes, the configured storage class and, when configured, object-lock retention.
func (b *ArchiveBucket) Put(ctx context.Context, name string, r io.Reader, meta map[string]string) (Object, error) {
	opts := minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		PartSize:     b.PartSize,
		StorageClass: b.StorageClass,
		UserMetadata: meta,
		NumThreads:   1,
	}
	var until time.Time
	if b.LockMode != "" {
		until = b.now().Add(time.Duration(b.LockDays) * 24 * time.Hour).UTC().Truncate(time.Second)
		opts.Mode = minio.RetentionMode(b.LockMode)
		opts.RetainUntilDate = until
	}
	info, err := b.Client.PutObject(ctx, b.Bucket, name, r, -1, opts)
	if err != nil {
		return Object{}, fmt.Errorf("uploading %s to archive bucket %q: %w", name, b.Bucket, describe(err, b.Endpoint, b.Bucket))
	}
	return Object{Name: name, VersionID: info.VersionID, Size: info.Size, RetainUntil: until}, nil
}

// PutSmall uploads a small in-memory object without retention (escrow bundles).
func (b *ArchiveBucket) PutSmall(ctx context.Context, name string, data []byte) error {
	_, err := b.Client.PutObject(ctx, b.Bucket, name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", StorageClass: b.StorageClass})
	if err != nil {
		return fmt.Errorf("uploading %s to archive bucket %q: %w", name, b.Bucket, describe(err, b.Endpoint, b.Bucket))
	}
	return nil
}

// Stat returns an object's size, version and retain-until date.
func (b *ArchiveBucket) Stat(ctx context.Context, name, versionID string) (Object, error) {
	st, err := b.Client.StatObject(ctx, b.Bucket, name, minio.StatObjectOptions{VersionID: versionID})
	if err != nil {
		return Object{}, b.objErr(name, err)
	}
	o := Object{Name: name, VersionID: st.VersionID, Size: st.Size}
	if b.LockMode != "" {
		if _, until, err := b.Client.GetObjectRetention(ctx, b.Bucket, name, st.VersionID); err == nil && until != nil {
			o.RetainUntil = until.UTC()
		}
	}
	return o, nil
}

// Get opens an object for reading.
func (b *ArchiveBucket) Get(ctx context.Context, name, versionID string) (io.ReadCloser, error) {
	obj, err := b.Client.GetObject(ctx, b.Bucket, name, minio.GetObjectOptions{VersionID: versionID})
	if err != nil {
		return nil, b.objErr(name, err)
	}
	// GetObject is lazy: Stat surfaces a missing object now.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, b.objErr(name, err)
	}
	return obj, nil
}

// List returns the names of objects under prefix.
func (b *ArchiveBucket) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for o := range b.Client.ListObjects(ctx, b.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("listing archive bucket %q: %w", b.Bucket, describe(o.Err, b.Endpoint, b.Bucket))
		}
		out = append(out, o.Key)
	}
	return out, nil
}

func (b *ArchiveBucket) objErr(name string, err error) error {
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return fmt.Errorf("archive object %s not found in bucket %q", name, b.Bucket)
	}
	return fmt.Errorf("archive object %s: %w", name, describe(err, b.Endpoint, b.Bucket))
}
