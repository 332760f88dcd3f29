// Command s3du prints the number of bytes and objects stored under a bucket prefix, as
// "BYTES OBJECTS". `make bench` uses it to measure what a restic repository costs in the bucket.
//
//	AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… s3du -endpoint 127.0.0.1:29000 -bucket b -prefix hmis/
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
	bucket := flag.String("bucket", "", "bucket")
	prefix := flag.String("prefix", "", "key prefix (empty: whole bucket)")
	flag.Parse()
	if *endpoint == "" || *bucket == "" {
		fmt.Fprintln(os.Stderr, "usage: s3du -endpoint HOST:PORT -bucket B [-prefix P]")
		os.Exit(2)
	}
	cl, err := minio.New(*endpoint, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: *secure})
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3du:", err)
		os.Exit(1)
	}
	var bytes, n int64
	for o := range cl.ListObjects(context.Background(), *bucket, minio.ListObjectsOptions{Prefix: *prefix, Recursive: true}) {
		if o.Err != nil {
			fmt.Fprintln(os.Stderr, "s3du:", o.Err)
			os.Exit(1)
		}
		bytes += o.Size
		n++
	}
	fmt.Println(bytes, n)
}
