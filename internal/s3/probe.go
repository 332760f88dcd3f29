package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNoBucket is wrapped by Probe's error when the bucket does not exist.
var ErrNoBucket = errors.New("bucket does not exist")

// Location is an S3 endpoint, bucket and prefix parsed from a restic repository URL.
type Location struct {
	Endpoint string // host:port
	Secure   bool
	Bucket   string
	Prefix   string
}

// ParseResticURL parses "s3:http://host:port/bucket/prefix" or "s3:host/bucket/prefix" (https).
// ok is false for non-S3 repositories.
func ParseResticURL(repo string) (loc Location, ok bool, err error) {
	rest, isS3 := strings.CutPrefix(repo, "s3:")
	if !isS3 {
		return Location{}, false, nil
	}
	loc.Secure = true
	switch {
	case strings.HasPrefix(rest, "http://"), strings.HasPrefix(rest, "https://"):
		u, perr := url.Parse(rest)
		if perr != nil {
			return loc, true, fmt.Errorf("repository URL does not parse: %v", perr)
		}
		loc.Secure = u.Scheme == "https"
		loc.Endpoint = u.Host
		rest = strings.TrimPrefix(u.Path, "/")
	default:
		host, path, _ := strings.Cut(rest, "/")
		loc.Endpoint = host
		rest = path
	}
	loc.Bucket, loc.Prefix, _ = strings.Cut(rest, "/")
	if loc.Endpoint == "" || loc.Bucket == "" {
		return loc, true, fmt.Errorf("repository URL %q names no endpoint or bucket (use s3:http://host:port/bucket/prefix)", repo)
	}
	return loc, true, nil
}

// Credentials are static S3 credentials.
type Credentials struct {
	AccessKey, SecretKey, SessionToken, Region string
}

// CredentialsFromEnv reads AWS_* variables from an environment list (KEY=VALUE).
func CredentialsFromEnv(env []string) Credentials {
	var c Credentials
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_ACCESS_KEY_ID":
			c.AccessKey = v
		case "AWS_SECRET_ACCESS_KEY":
			c.SecretKey = v
		case "AWS_SESSION_TOKEN":
			c.SessionToken = v
		case "AWS_DEFAULT_REGION", "AWS_REGION":
			c.Region = v
		}
	}
	return c
}

// NewClient returns a minio-go client for an endpoint.
func NewClient(endpoint string, secure bool, c Credentials) (*minio.Client, error) {
	cl, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken),
		Secure: secure,
		Region: c.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("creating S3 client for %s: %w", endpoint, err)
	}
	return cl, nil
}

// Static reports whether c holds a static key pair.
func (c Credentials) Static() bool { return c.AccessKey != "" && c.SecretKey != "" }

// Probe checks, within timeout, that the endpoint answers, the credentials are accepted and
// the bucket exists. Without static keys it checks only that the endpoint answers: restic
// then finds credentials through its own chain (AWS_PROFILE and the shared credentials file,
// an instance role) and reports itself when there are none. Errors are one line naming the
// problem and the fix.
func Probe(ctx context.Context, loc Location, c Credentials, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", loc.Endpoint)
	if err != nil {
		return fmt.Errorf("S3 endpoint %s unreachable: %v (check repository.url and that the S3 server is running)", loc.Endpoint, shortNetErr(err))
	}
	conn.Close()
	if !c.Static() {
		return nil
	}
	cl, err := NewClient(loc.Endpoint, loc.Secure, c)
	if err != nil {
		return err
	}
	ok, err := cl.BucketExists(ctx, loc.Bucket)
	if err != nil {
		return describe(err, loc.Endpoint, loc.Bucket)
	}
	if !ok {
		return fmt.Errorf("S3 bucket %q on %s: %w (create it, or `dhis2-life init` creates it when the credentials allow)", loc.Bucket, loc.Endpoint, ErrNoBucket)
	}
	return nil
}

// EnsureBucket creates the bucket when it is missing. Without static keys it leaves that
// to `restic init`, which creates the bucket with the credentials of its own chain.
func EnsureBucket(ctx context.Context, loc Location, c Credentials, objectLock bool) error {
	if !c.Static() {
		return nil
	}
	cl, err := NewClient(loc.Endpoint, loc.Secure, c)
	if err != nil {
		return err
	}
	ok, err := cl.BucketExists(ctx, loc.Bucket)
	if err != nil {
		return describe(err, loc.Endpoint, loc.Bucket)
	}
	if ok {
		return nil
	}
	if err := cl.MakeBucket(ctx, loc.Bucket, minio.MakeBucketOptions{Region: c.Region, ObjectLocking: objectLock}); err != nil {
		return fmt.Errorf("creating bucket %q: %w", loc.Bucket, describe(err, loc.Endpoint, loc.Bucket))
	}
	return nil
}

func describe(err error, endpoint, bucket string) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("S3 endpoint %s did not answer in time (check repository.url and the network)", endpoint)
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "InvalidAccessKeyId":
		return fmt.Errorf("S3 %s rejected the access key (check AWS_ACCESS_KEY_ID in repository.env_file)", endpoint)
	case "SignatureDoesNotMatch":
		return fmt.Errorf("S3 %s rejected the secret key (check AWS_SECRET_ACCESS_KEY in repository.env_file)", endpoint)
	case "AccessDenied":
		return fmt.Errorf("S3 %s denied access to bucket %q (check the credentials' policy)", endpoint, bucket)
	}
	return fmt.Errorf("S3 %s: %v", endpoint, err)
}

func shortNetErr(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}
