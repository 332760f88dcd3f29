// Command s3put uploads one file to S3 with a plain PUT (minio-go, multipart for large files),
// creating the bucket when missing. `make bench` uses it for the baseline "upload the dump"
// step of today's practice, so the baseline does not depend on mc or s3cmd being installed.
//
//	AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… s3put -endpoint 127.0.0.1:29000 -bucket b -key k FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 API host:port")
	secure := flag.Bool("secure", false, "use https")
	bucket := flag.String("bucket", "", "bucket (created when missing)")
	key := flag.String("key", "", "object key")
	flag.Parse()
	if *endpoint == "" || *bucket == "" || *key == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: s3put -endpoint HOST:PORT -bucket B -key K FILE (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
		os.Exit(2)
	}
	if err := put(*endpoint, *secure, *bucket, *key, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "s3put:", err)
		os.Exit(1)
	}
}

func put(endpoint string, secure bool, bucket, key, file string) error {
	ctx := context.Background()
	cl, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: secure})
	if err != nil {
		return err
	}
	ok, err := cl.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	if !ok {
		if err := cl.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
			return fmt.Errorf("make bucket %s: %w", bucket, err)
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// 64 MiB parts bound memory (minio-go buffers one part per upload thread).
	info, err := cl.PutObject(ctx, bucket, key, f, st.Size(), minio.PutObjectOptions{
		ContentType: "application/octet-stream", PartSize: 64 << 20, NumThreads: 2,
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	if info.Size != st.Size() {
		return fmt.Errorf("put %s/%s: stored %d bytes of %d", bucket, key, info.Size, st.Size())
	}
	return nil
}
