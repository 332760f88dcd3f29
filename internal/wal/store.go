package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dhis2-life/dhis2-life/internal/s3"
)

// Object metadata keys (stored as X-Amz-Meta-*).
const (
	metaMAC  = "Dl2-Mac"
	metaSize = "Dl2-Size"
)

// maxFileSize bounds what push reads and fetch decodes: the largest WAL segment (1 GB).
const maxFileSize = 1 << 30

// Store is one instance's WAL archive: objects <repository prefix>/wal/<instance>/<name> in the
// repository's bucket.
type Store struct {
	Client *minio.Client
	Loc    s3.Location
	// Prefix is the object key prefix ending in "/".
	Prefix string
	Keys   *Keys
}

// NewStore connects to the WAL archive of an instance in the bucket of an S3 restic repository.
func NewStore(repoURL string, env []string, instance string, keys *Keys) (*Store, error) {
	loc, isS3, err := s3.ParseResticURL(repoURL)
	if err != nil {
		return nil, err
	}
	if !isS3 {
		return nil, fmt.Errorf("WAL archiving needs an S3 repository (repository.url = %q): use s3:http(s)://host:port/bucket/prefix", repoURL)
	}
	creds := s3.CredentialsFromEnv(env)
	if creds.AccessKey == "" || creds.SecretKey == "" {
		return nil, errors.New("no S3 credentials for the WAL archive: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in repository.env_file")
	}
	// Few retries: PostgreSQL retries a failed archive_command itself, and keeps the file.
	cl, err := minio.New(loc.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, creds.SessionToken),
		Secure: loc.Secure, Region: creds.Region, MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("creating S3 client for %s: %w", loc.Endpoint, err)
	}
	return &Store{Client: cl, Loc: loc, Prefix: Prefix(loc.Prefix, instance), Keys: keys}, nil
}

// Prefix returns the key prefix of an instance's WAL below a repository prefix.
func Prefix(repoPrefix, instance string) string {
	return strings.TrimPrefix(path.Join(repoPrefix, "wal", instance), "/") + "/"
}

// Key returns the object key of a WAL file.
func (s *Store) Key(name string) string { return s.Prefix + name }

// ErrConflict means the archive already holds a different file under the same name.
var ErrConflict = errors.New("the archive already holds a DIFFERENT file under this name")

// ErrNotFound means the archive has no such file.
var ErrNotFound = errors.New("not in the WAL archive")

// PushResult says what Push did.
type PushResult struct {
	Name          string
	Size          int64 // of the WAL file
	Stored        int64 // object size (compressed + encrypted)
	AlreadyStored bool  // the same content was archived before
	Seconds       float64
}

// Push archives the WAL file at p (PostgreSQL's %p). The upload is one PUT with Content-MD5,
// so the object appears whole or not at all, and is read back (size and MAC) before Push
// returns nil. Pushing the same content again succeeds; different content is refused with
// ErrConflict.
func (s *Store) Push(ctx context.Context, p string) (*PushResult, error) {
	t0 := time.Now()
	name := filepath.Base(p)
	f, err := ParseName(name)
	if err != nil {
		return nil, err
	}
	plain, err := readFileMax(p, maxFileSize)
	if err != nil {
		return nil, err
	}
	if (f.Kind == KindSegment || f.Kind == KindPartial) && !validSegmentSize(int64(len(plain))) {
		return nil, fmt.Errorf("%s is %d bytes, not a whole WAL segment (a power of two from 1 MB to 1 GB): refusing to archive a partial file", name, len(plain))
	}
	mac := s.Keys.MAC(name, plain)
	res := &PushResult{Name: name, Size: int64(len(plain))}
	if same, err := s.compare(ctx, name, mac, int64(len(plain))); err != nil {
		return nil, err
	} else if same {
		res.AlreadyStored, res.Seconds = true, time.Since(t0).Seconds()
		return res, nil
	}
	obj, err := s.Keys.Seal(name, plain)
	if err != nil {
		return nil, fmt.Errorf("%s: sealing: %w", name, err)
	}
	_, err = s.Client.PutObject(ctx, s.Loc.Bucket, s.Key(name), bytes.NewReader(obj), int64(len(obj)), minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		UserMetadata:     map[string]string{metaMAC: mac, metaSize: strconv.Itoa(len(plain))},
		SendContentMd5:   true,
		DisableMultipart: true,
	})
	if err != nil {
		return nil, fmt.Errorf("uploading %s to s3://%s/%s: %w", name, s.Loc.Bucket, s.Key(name), err)
	}
	st, err := s.Client.StatObject(ctx, s.Loc.Bucket, s.Key(name), minio.StatObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading back %s after upload: %w", name, err)
	}
	if st.Size != int64(len(obj)) || st.UserMetadata[metaMAC] != mac {
		return nil, fmt.Errorf("%s: the stored object (%d bytes) does not match what was uploaded (%d bytes)", name, st.Size, len(obj))
	}
	res.Stored, res.Seconds = st.Size, time.Since(t0).Seconds()
	return res, nil
}

// compare reports whether the archive holds name with the given MAC; ErrConflict when it holds
// other content.
func (s *Store) compare(ctx context.Context, name, mac string, size int64) (bool, error) {
	st, err := s.Client.StatObject(ctx, s.Loc.Bucket, s.Key(name), minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return false, nil
		}
		return false, fmt.Errorf("checking s3://%s/%s: %w", s.Loc.Bucket, s.Key(name), err)
	}
	if st.UserMetadata[metaMAC] == mac {
		return true, nil
	}
	return false, fmt.Errorf("%s: %w (archived: %s bytes, mac %.12s…; this one: %d bytes, mac %.12s…); two clusters may be archiving to the same place, or the archive belongs to an older cluster: check [instances.*] and wal setup",
		name, ErrConflict, st.UserMetadata[metaSize], st.UserMetadata[metaMAC], size, mac)
}

// Fetch restores the archived file name to dest (PostgreSQL's %p): it downloads, authenticates,
// decompresses and checks the MAC, writes dest.tmp, syncs it and renames it to dest.
// ErrNotFound when the archive does not hold name.
func (s *Store) Fetch(ctx context.Context, name, dest string) (int64, error) {
	if _, err := ParseName(name); err != nil {
		return 0, err
	}
	obj, st, err := s.get(ctx, name)
	if err != nil {
		return 0, err
	}
	plain, err := s.Keys.Open(name, obj, maxFileSize)
	if err != nil {
		return 0, err
	}
	if want := st.UserMetadata[metaSize]; want != "" && want != strconv.Itoa(len(plain)) {
		return 0, fmt.Errorf("%s: decoded %d bytes, the archive recorded %s", name, len(plain), want)
	}
	if mac := s.Keys.MAC(name, plain); st.UserMetadata[metaMAC] != "" && mac != st.UserMetadata[metaMAC] {
		return 0, fmt.Errorf("%s: content does not match its recorded MAC", name)
	}
	tmp := dest + ".dl2tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", tmp, err)
	}
	_, err = out.Write(plain)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("writing %s: %w", dest, err)
	}
	return int64(len(plain)), nil
}

func (s *Store) get(ctx context.Context, name string) ([]byte, minio.ObjectInfo, error) {
	o, err := s.Client.GetObject(ctx, s.Loc.Bucket, s.Key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, minio.ObjectInfo{}, fmt.Errorf("fetching %s: %w", name, err)
	}
	defer o.Close()
	st, err := o.Stat()
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, st, fmt.Errorf("%s: %w", name, ErrNotFound)
		}
		return nil, st, fmt.Errorf("fetching %s: %w", name, err)
	}
	b, err := io.ReadAll(io.LimitReader(o, maxFileSize+1<<20))
	if err != nil {
		return nil, st, fmt.Errorf("fetching %s: %w", name, err)
	}
	if int64(len(b)) != st.Size {
		return nil, st, fmt.Errorf("fetching %s: got %d of %d bytes", name, len(b), st.Size)
	}
	return b, st, nil
}

// Object is one archived WAL file.
type Object struct {
	File
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// List returns the archived files, ordered by timeline and position (history files first).
func (s *Store) List(ctx context.Context) ([]Object, error) {
	var out []Object
	for o := range s.Client.ListObjects(ctx, s.Loc.Bucket, minio.ListObjectsOptions{Prefix: s.Prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", s.Loc.Bucket, s.Prefix, o.Err)
		}
		f, err := ParseName(strings.TrimPrefix(o.Key, s.Prefix))
		if err != nil {
			continue // not ours (e.g. a stray upload); never touched
		}
		out = append(out, Object{File: f, Size: o.Size, Modified: o.LastModified})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seg != out[j].Seg {
			return out[i].Seg < out[j].Seg
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Delete removes archived files by name.
func (s *Store) Delete(ctx context.Context, names []string) error {
	for _, n := range names {
		if err := s.Client.RemoveObject(ctx, s.Loc.Bucket, s.Key(n), minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("removing %s from the WAL archive: %w", n, err)
		}
	}
	return nil
}

func readFileMax(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading WAL file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading WAL file %s: %w", p, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a WAL file", p, max)
	}
	return b, nil
}
