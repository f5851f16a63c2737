package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Defaults of BucketConfig, also the defaults of the settings that configure it.
const (
	// EndpointDefault is AWS S3; with a region, requests go to that region's endpoint.
	EndpointDefault = "https://s3.amazonaws.com"
	// PartSizeDefault holds the demo's largest files (8 MiB) in one request, and lets a
	// file grow to 80 GiB in S3's 10,000 parts. Each upload holds one part in memory.
	PartSizeDefault = 8 << 20
	// URLExpiryDefault is long enough for a client to follow a redirect, even with a
	// clock a little off, and short enough that a leaked link soon stops working.
	URLExpiryDefault = 5 * time.Minute
)

// Limits of S3 itself.
const (
	// PartSizeMin is the smallest part S3 takes but for the last one.
	PartSizeMin = 5 << 20
	// PartSizeMax is the largest part S3 takes.
	PartSizeMax = 5 << 30
	// URLExpiryMax is the longest a presigned URL may stay valid.
	URLExpiryMax = 7 * 24 * time.Hour
	// maxParts is the most parts one upload may have.
	maxParts = 10000
)

// Bucket stores files in a bucket of an S3-compatible object store, under
// PREFIX/JOB_ID/FILE_ID, so that api and worker processes share no disk.
//
// It keeps Dir's promises with conditional writes: every write that makes an object (a
// single PUT, or the CompleteMultipartUpload that ends an upload in parts) carries
// If-None-Match: *, so the store refuses it (412) when the object exists, and the first
// file stored stays the one served; a refused writer takes the stored file's size as its
// own. An object appears whole or not at all, so no reader ever sees part of a file: parts
// of an upload are no object until it completes. This is simpler than writing under a name
// of each attempt and copying into place (Dir's scheme): there is no temporary object to
// remove, a file costs one write, and a copy would itself need a condition on its target.
// Conditional writes are honoured by AWS S3 (since 2024), MinIO, Ceph RGW and R2; a store
// that ignored them would replace files silently, so NewBucket refuses one that does.
//
// Files of up to PartSize go in one PUT; larger ones in parts of PartSize, and an upload
// that fails is aborted, so that no part is left behind. Only a worker that dies in the
// middle of an upload cannot abort it: the janitor aborts such uploads with the rest of the
// job's files once the job has expired, and a lifecycle rule (AbortIncompleteMultipartUpload,
// see the README) makes the store drop them too.
type Bucket struct {
	client   *minio.Client
	core     minio.Core // the same client, with the calls of an upload in parts
	bucket   string
	prefix   string // "" or ending in "/"
	endpoint string // as configured, for messages
	partSize int64
	expiry   time.Duration
}

// BucketConfig says which bucket files go to and how to reach it.
type BucketConfig struct {
	// Bucket is the bucket's name. Required.
	Bucket string
	// Prefix is the folder of the bucket that files go under, such as "longhaul" for
	// longhaul/JOB_ID/FILE_ID. If empty, they go at the top of the bucket.
	Prefix string
	// Endpoint is the URL of the S3 service: https://s3.eu-west-1.amazonaws.com,
	// http://127.0.0.1:9000. If empty, EndpointDefault is used.
	Endpoint string
	// Region is the bucket's region. If empty, it is asked of the service.
	Region string
	// PathStyle names the bucket in the path of every request (http://host/bucket/key) rather
	// than in the host name (http://bucket.host/key). If false, the path is used for any
	// endpoint but AWS's and Google's, which get the bucket in the host name.
	PathStyle bool
	// AccessKeyID, SecretAccessKey and SessionToken are the credentials. If AccessKeyID is
	// empty, those of the machine's or container's IAM role are used.
	AccessKeyID, SecretAccessKey, SessionToken string
	// PartSize is the size of the parts big files are uploaded in, from PartSizeMin to
	// PartSizeMax. If zero, PartSizeDefault is used.
	PartSize int64
	// URLExpiry is how long a URL from DownloadURL stays valid, at most URLExpiryMax. If
	// zero, URLExpiryDefault is used.
	URLExpiry time.Duration
	// ReadOnly says that this process only reads files (an API without a worker): the
	// start-up check looks the bucket up but writes nothing, so such a process needs no
	// right to write.
	ReadOnly bool
}

// WithDefaults returns c with every zero field that has a default set to it.
func (c BucketConfig) WithDefaults() BucketConfig {
	if c.Endpoint == "" {
		c.Endpoint = EndpointDefault
	}
	if c.PartSize == 0 {
		c.PartSize = PartSizeDefault
	}
	if c.URLExpiry == 0 {
		c.URLExpiry = URLExpiryDefault
	}
	return c
}

// ParseBucketURL reads the location of a bucket and its prefix, s3://BUCKET or
// s3://BUCKET/PREFIX.
func ParseBucketURL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("%q is not a bucket URL like s3://my-bucket or s3://my-bucket/longhaul", s)
	}
	if err := s3utils.CheckValidBucketNameStrict(u.Host); err != nil {
		return "", "", fmt.Errorf("%q names no valid bucket: %w", s, err)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// CheckEndpoint checks that s is the URL of an S3 service: http or https, a host, no path.
func CheckEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return fmt.Errorf("the S3 endpoint %q is not a URL like https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000", s)
	}
	return nil
}

// checkTimeout bounds the start-up check.
const checkTimeout = 30 * time.Second

// NewBucket connects to the bucket cfg names and checks that it is there and, unless
// cfg.ReadOnly, that files can be written, listed and deleted in it, and that the store
// honours conditional writes: it writes a small probe object twice under the prefix and
// deletes it. Its errors say how to fix what is wrong.
func NewBucket(ctx context.Context, cfg BucketConfig) (*Bucket, error) {
	cfg = cfg.WithDefaults()
	if err := CheckEndpoint(cfg.Endpoint); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Endpoint)
	if cfg.PartSize < PartSizeMin || cfg.PartSize > PartSizeMax {
		return nil, fmt.Errorf("a part size of %d bytes is outside S3's limits (%d to %d)", cfg.PartSize, PartSizeMin, PartSizeMax)
	}
	if cfg.URLExpiry < 0 || cfg.URLExpiry > URLExpiryMax {
		return nil, fmt.Errorf("a URL expiry of %v is outside S3's limits (up to %v)", cfg.URLExpiry, URLExpiryMax)
	}
	creds := credentials.NewIAM("")
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        creds,
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: lookup,
		// Three tries, as AWS's own SDKs make: enough for a passing 503, and a wrong
		// endpoint is reported within seconds.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("set up the S3 client of %s: %w", cfg.Endpoint, err)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	b := &Bucket{client: client, core: minio.Core{Client: client}, bucket: cfg.Bucket, prefix: prefix, endpoint: cfg.Endpoint,
		partSize: cfg.PartSize, expiry: cfg.URLExpiry}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := b.check(ctx, cfg.ReadOnly); err != nil {
		return nil, err
	}
	return b, nil
}

// check is NewBucket's start-up check.
func (b *Bucket) check(ctx context.Context, readOnly bool) error {
	exists, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return b.explain("look up", err)
	}
	if !exists {
		return fmt.Errorf("bucket %q does not exist at %s: create it (aws s3 mb s3://%s, or mc mb ALIAS/%s), "+
			"or name another in LONGHAUL_STORAGE; if it exists elsewhere, set LONGHAUL_S3_ENDPOINT to that service",
			b.bucket, b.endpoint, b.bucket, b.bucket)
	}
	if readOnly {
		return nil
	}
	probe := b.prefix + ".longhaul-probe-" + rand.Text()
	if err := b.putIfAbsent(ctx, probe, []byte("probe"), minio.PutObjectOptions{}); err != nil {
		return b.explain("write a probe object to", err)
	}
	again := b.putIfAbsent(ctx, probe, []byte("again"), minio.PutObjectOptions{})
	if err := b.listOne(ctx); err != nil {
		b.client.RemoveObject(ctx, b.bucket, probe, minio.RemoveObjectOptions{})
		return b.explain("list", err)
	}
	if err := b.client.RemoveObject(ctx, b.bucket, probe, minio.RemoveObjectOptions{}); err != nil {
		return b.explain("delete a probe object from", err)
	}
	if again == nil {
		return fmt.Errorf("the S3 service at %s ignores conditional writes (If-None-Match: *): it replaced an object "+
			"that a write asked it to keep, so a ready file could be replaced; use a service that honours them "+
			"(AWS S3, MinIO, Ceph RGW, Cloudflare R2)", b.endpoint)
	}
	if !refusedAsExisting(again) {
		return b.explain("write a probe object to", again)
	}
	return nil
}

// listOne lists the first object under the prefix, as the janitor lists them all.
func (b *Bucket) listOne(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing after its first object
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, MaxKeys: 1}) {
		return obj.Err
	}
	return nil
}

// explain wraps an error of the start-up check with what to do about it.
func (b *Bucket) explain(doing string, err error) error {
	var netErr net.Error
	resp := minio.ToErrorResponse(err)
	var hint string
	switch {
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		hint = "check LONGHAUL_S3_ENDPOINT: nothing answered there as an S3 service"
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" || resp.Code == "ExpiredToken" ||
		resp.Code == "InvalidToken":
		hint = "the service refused the credentials: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN"
	case resp.StatusCode == http.StatusForbidden:
		hint = fmt.Sprintf("the service refused the credentials or their rights: check AWS_ACCESS_KEY_ID, "+
			"AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and that they may s3:ListBucket and s3:ListBucketMultipartUploads the bucket and "+
			"s3:GetObject, s3:PutObject, s3:DeleteObject and s3:AbortMultipartUpload on %s*", b.bucket+"/"+b.prefix)
	case resp.Code == "AuthorizationHeaderMalformed" || resp.Code == "PermanentRedirect" ||
		resp.StatusCode == http.StatusMovedPermanently:
		hint = "the bucket is in another region: set LONGHAUL_S3_REGION (or AWS_REGION) to it, or point " +
			"LONGHAUL_S3_ENDPOINT at that region's service"
	default:
		hint = "check LONGHAUL_STORAGE, LONGHAUL_S3_ENDPOINT and the credentials"
	}
	return fmt.Errorf("%s bucket %q at %s: %w; %s", doing, b.bucket, b.endpoint, err, hint)
}

// refusedAsExisting reports whether a conditional write was refused because the object
// exists: 412, or 409 when another conditional write of the same name was under way.
func refusedAsExisting(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed" ||
		resp.Code == "ConditionalRequestConflict"
}

func notStored(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.StatusCode == http.StatusNotFound || resp.Code == "NoSuchKey"
}

func (b *Bucket) key(jobID string, fileID int64) string {
	return b.prefix + jobID + "/" + strconv.FormatInt(fileID, 10)
}

// requestTimeout bounds one small request (a stat, a presign, a lookup); uploads and
// downloads are bounded by the transport's timeouts instead, since they take as long as
// their size.
const requestTimeout = time.Minute

// Write stores the content of a file. Content of up to PartSize goes in one PUT, more in an
// upload in parts; either is refused by the store when the file exists, and the stored
// file's size is then returned (see Bucket).
func (b *Bucket) Write(jobID string, fileID int64, token string, content io.Reader) (int64, error) {
	ctx := context.Background()
	key := b.key(jobID, fileID)
	file := fileOptions(fileID, token)
	// Read up to a part, in a buffer only as large as the file when it is smaller.
	first, err := io.ReadAll(io.LimitReader(content, b.partSize))
	if err != nil {
		return 0, fmt.Errorf("read file %d: %w", fileID, err)
	}
	size := int64(len(first))
	if size < b.partSize { // all of it fits one request
		err = b.putIfAbsent(ctx, key, first, file)
	} else {
		size, err = b.writeParts(ctx, key, first, content, file)
	}
	if refusedAsExisting(err) {
		size, err := b.Size(jobID, fileID)
		if errors.Is(err, ErrNotFound) {
			return 0, fmt.Errorf("store file %d: refused while another write of it is under way: %w", fileID, err)
		}
		return size, err
	} else if err != nil {
		return 0, fmt.Errorf("store file %d: %w", fileID, err)
	}
	return size, nil
}

// putIfAbsent stores body in one request, unless the object exists.
func (b *Bucket) putIfAbsent(ctx context.Context, key string, body []byte, opts minio.PutObjectOptions) error {
	opts.SetMatchETagExcept("*")
	md5sum, sha := sums(body)
	_, err := b.core.PutObject(ctx, b.bucket, key, bytes.NewReader(body), int64(len(body)), md5sum, sha, opts)
	return err
}

// fileOptions describe a stored file: served as a download named after it (also when a
// client fetches it from the store itself), and marked with the attempt that made it.
func fileOptions(fileID int64, token string) minio.PutObjectOptions {
	return minio.PutObjectOptions{
		ContentType:        "application/octet-stream",
		ContentDisposition: mime.FormatMediaType("attachment", map[string]string{"filename": strconv.FormatInt(fileID, 10) + ".bin"}),
		UserMetadata:       map[string]string{"attempt": token},
	}
}

// writeParts uploads content in parts, the first of which is already read into part (a
// whole part's length, which the next parts reuse), and completes the upload unless the file
// exists. An upload that fails is aborted.
func (b *Bucket) writeParts(ctx context.Context, key string, part []byte, content io.Reader, file minio.PutObjectOptions) (size int64, err error) {
	uploadID, err := b.core.NewMultipartUpload(ctx, b.bucket, key, file)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			b.abort(key, uploadID)
		}
	}()
	var done []minio.CompletePart
	for n := len(part); n > 0; {
		if len(done) == maxParts {
			return 0, fmt.Errorf("the file is larger than %d parts of %d bytes: raise LONGHAUL_S3_PART_SIZE", maxParts, b.partSize)
		}
		md5sum, sha := sums(part[:n])
		p, err := b.core.PutObjectPart(ctx, b.bucket, key, uploadID, len(done)+1, bytes.NewReader(part[:n]), int64(n),
			minio.PutObjectPartOptions{Md5Base64: md5sum, Sha256Hex: sha})
		if err != nil {
			return 0, fmt.Errorf("upload part %d: %w", len(done)+1, err)
		}
		done = append(done, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
		size += int64(n)
		if n < len(part) {
			break // a short part is the last
		}
		n, err = io.ReadFull(content, part)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("read part %d: %w", len(done)+1, err)
		}
	}
	var ifAbsent minio.PutObjectOptions
	ifAbsent.SetMatchETagExcept("*")
	if _, err := b.core.CompleteMultipartUpload(ctx, b.bucket, key, uploadID, done, ifAbsent); err != nil {
		return 0, err
	}
	return size, nil
}

// abort aborts an upload, so that its parts do not stay in the store (and on its bill).
func (b *Bucket) abort(key, uploadID string) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	// An abort that fails too leaves the upload to the janitor and the lifecycle rule.
	b.core.AbortMultipartUpload(ctx, b.bucket, key, uploadID)
}

// sums are the Content-MD5 (base64) and SHA-256 (hex) of a request body: the store checks
// the first, and the signature covers the second, so a body damaged on the way is refused.
func sums(body []byte) (md5Base64, sha256Hex string) {
	m := md5.Sum(body)
	s := sha256.Sum256(body)
	return base64.StdEncoding.EncodeToString(m[:]), hex.EncodeToString(s[:])
}

// Size returns the size of a stored file, or ErrNotFound.
func (b *Bucket) Size(jobID string, fileID int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	info, err := b.client.StatObject(ctx, b.bucket, b.key(jobID, fileID), minio.StatObjectOptions{})
	if notStored(err) {
		return 0, ErrNotFound
	} else if err != nil {
		return 0, fmt.Errorf("stat file %d: %w", fileID, err)
	}
	return info.Size, nil
}

// Open opens a stored file for reading, or returns ErrNotFound. Reading streams it from the
// store, from where it was last sought (see objectReader).
func (b *Bucket) Open(jobID string, fileID int64) (*Object, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	key := b.key(jobID, fileID)
	info, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if notStored(err) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("open file %d: %w", fileID, err)
	}
	return &Object{ReadSeekCloser: &objectReader{b: b, key: key, size: info.Size}, Size: info.Size}, nil
}

// objectReader reads an object of the store from its position: the first read after a
// seek asks for the object from there on (one GET, with a Range unless from the start), so
// that the seeks http.ServeContent makes to learn the size (to the end, and back) cost no
// request, and a ranged download costs one.
type objectReader struct {
	b    *Bucket
	key  string
	size int64
	pos  int64
	body io.ReadCloser // the object from pos on; nil until the next read asks for it
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.body == nil {
		var opts minio.GetObjectOptions
		if r.pos > 0 {
			opts.SetRange(r.pos, 0)
		}
		body, _, _, err := r.b.core.GetObject(context.Background(), r.b.bucket, r.key, opts)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", r.key, err)
		}
		r.body = body
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	return n, err
}

func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	pos := offset
	switch whence {
	case io.SeekCurrent:
		pos += r.pos
	case io.SeekEnd:
		pos += r.size
	}
	if pos < 0 {
		return 0, fmt.Errorf("seek %s to %d: before the start", r.key, pos)
	}
	if pos != r.pos {
		r.Close()
		r.pos = pos
	}
	return pos, nil
}

// Close ends the request under way, if any.
func (r *objectReader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// DownloadURL returns a presigned URL at which the stored file can be fetched straight from
// the store, without credentials, for URLExpiry; or ErrNotFound.
func (b *Bucket) DownloadURL(ctx context.Context, jobID string, fileID int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	key := b.key(jobID, fileID)
	if _, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{}); notStored(err) {
		return "", ErrNotFound
	} else if err != nil {
		return "", fmt.Errorf("stat file %d: %w", fileID, err)
	}
	u, err := b.client.PresignedGetObject(ctx, b.bucket, key, b.expiry, nil)
	if err != nil {
		return "", fmt.Errorf("presign file %d: %w", fileID, err)
	}
	return u.String(), nil
}

// sweepTimeout bounds listing or removing the files of every job.
const sweepTimeout = 10 * time.Minute

// Jobs lists the jobs that have files or unfinished uploads in the bucket, each with the
// time of its latest file or upload.
func (b *Bucket) Jobs() (map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	out := map[string]time.Time{}
	seen := func(key string, at time.Time) {
		job, _, ok := strings.Cut(strings.TrimPrefix(key, b.prefix), "/")
		if last, listed := out[job]; ok && (!listed || at.After(last)) {
			out[job] = at
		}
	}
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list bucket %s: %w", b.bucket, obj.Err)
		}
		seen(obj.Key, obj.LastModified)
	}
	for up := range b.client.ListIncompleteUploads(ctx, b.bucket, b.prefix, true) {
		if up.Err != nil {
			return nil, fmt.Errorf("list uploads of bucket %s: %w", b.bucket, up.Err)
		}
		seen(up.Key, up.Initiated)
	}
	return out, nil
}

// RemoveJob deletes every file of a job and aborts its unfinished uploads.
func (b *Bucket) RemoveJob(jobID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	prefix := b.prefix + jobID + "/"
	var keys []minio.ObjectInfo
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("list files of job %s: %w", jobID, obj.Err)
		}
		keys = append(keys, minio.ObjectInfo{Key: obj.Key})
	}
	objects := make(chan minio.ObjectInfo, len(keys))
	for _, k := range keys {
		objects <- k
	}
	close(objects)
	var failed error
	for rerr := range b.client.RemoveObjects(ctx, b.bucket, objects, minio.RemoveObjectsOptions{}) {
		if failed == nil { // the rest are read so that the deleting goroutine ends
			failed = fmt.Errorf("remove file %s of job %s: %w", rerr.ObjectName, jobID, rerr.Err)
		}
	}
	if failed != nil {
		return failed
	}
	for up := range b.client.ListIncompleteUploads(ctx, b.bucket, prefix, true) {
		if up.Err != nil {
			return fmt.Errorf("list uploads of job %s: %w", jobID, up.Err)
		}
		if err := b.core.AbortMultipartUpload(ctx, b.bucket, up.Key, up.UploadID); err != nil && !notStored(err) {
			return fmt.Errorf("abort an upload of job %s: %w", jobID, err)
		}
	}
	return nil
}
