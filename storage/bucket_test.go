package storage_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/minio/minio-go/v7"
)

// TestBucket runs the bucket store against a real S3 server (moto_server), one bucket per
// case: moto takes a second or two to start, so the cases share it.
func TestBucket(t *testing.T) {
	buckets := []string{"first", "parts", "failed", "sweep", "links", "check"}
	s3 := proctest.StartS3(t, devbin.S3Options{}, buckets...)
	open := func(t *testing.T, bucket string, edit ...func(*storage.BucketConfig)) *storage.Bucket {
		t.Helper()
		cfg := bucketConfig(s3, bucket)
		for _, e := range edit {
			e(&cfg)
		}
		b, err := storage.NewBucket(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	client, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: client}

	t.Run("the first file stored stays", func(t *testing.T) {
		b := open(t, "first")
		job := jobs.NewID()
		if _, err := b.Open(job, 7); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("open before write = %v, want ErrNotFound", err)
		}
		if _, err := b.Size(job, 7); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("size before write = %v, want ErrNotFound", err)
		}
		size, err := b.Write(job, 7, "a1", strings.NewReader("first"))
		if err != nil || size != 5 {
			t.Fatalf("write = %d, %v", size, err)
		}
		size, err = b.Write(job, 7, "a2", strings.NewReader("second attempt"))
		if err != nil || size != 5 {
			t.Fatalf("second write = %d, %v; want the first file's size 5", size, err)
		}
		if got := readAll(t, b, job, 7); string(got) != "first" {
			t.Errorf("stored %q, want the first write", got)
		}
		info, err := client.StatObject(t.Context(), "first", "files/"+job+"/7", minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := info.UserMetadata["Attempt"]; got != "a1" {
			t.Errorf("the object says attempt %q made it, want a1", got)
		}
	})

	t.Run("big files go in parts, and a second attempt's upload is aborted", func(t *testing.T) {
		b := open(t, "parts")
		job := jobs.NewID()
		content := randomBytes(2*storage.PartSizeMin + 12345)
		size, err := b.Write(job, 14, "a1", bytes.NewReader(content))
		if err != nil || size != int64(len(content)) {
			t.Fatalf("write = %d, %v; want %d", size, err, len(content))
		}
		info, err := client.StatObject(t.Context(), "parts", "files/"+job+"/14", minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(info.ETag, "-3") {
			t.Errorf("ETag %q: want the ETag of an upload in 3 parts (ending -3)", info.ETag)
		}
		if got := readAll(t, b, job, 14); sha256.Sum256(got) != sha256.Sum256(content) {
			t.Errorf("read back %d bytes that differ from the %d written", len(got), len(content))
		}
		// Ranges: a seek makes the next read start there.
		f, err := b.Open(job, 14)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		at := int64(storage.PartSizeMin + 100)
		if _, err := f.Seek(at, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 64)
		if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, content[at:at+64]) {
			t.Errorf("read after a seek to %d: %v, bytes equal %v", at, err, bytes.Equal(got, content[at:at+64]))
		}

		size, err = b.Write(job, 14, "a2", bytes.NewReader(randomBytes(2*storage.PartSizeMin)))
		if err != nil || size != int64(len(content)) {
			t.Errorf("second write = %d, %v; want the first file's size %d", size, err, len(content))
		}
		if got := readAll(t, b, job, 14); sha256.Sum256(got) != sha256.Sum256(content) {
			t.Errorf("the second attempt's upload replaced the first file")
		}
		checkNoUploads(t, client, "parts")
	})

	t.Run("a failed upload leaves no part behind", func(t *testing.T) {
		b := open(t, "failed")
		job := jobs.NewID()
		broken := io.MultiReader(bytes.NewReader(randomBytes(storage.PartSizeMin+1)), failingReader{})
		if _, err := b.Write(job, 21, "a1", broken); err == nil {
			t.Fatal("write of a broken stream succeeded")
		}
		if _, err := b.Size(job, 21); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("size after a failed write = %v, want ErrNotFound", err)
		}
		checkNoUploads(t, client, "failed")
	})

	t.Run("jobs are listed and removed with their unfinished uploads", func(t *testing.T) {
		b := open(t, "sweep")
		expired, live := jobs.NewID(), jobs.NewID()
		before := time.Now().Add(-time.Minute) // moto's clock has whole seconds
		for _, id := range []string{expired, live} {
			if _, err := b.Write(id, 7, "a1", strings.NewReader("data")); err != nil {
				t.Fatal(err)
			}
		}
		// What a worker killed in the middle of an upload leaves behind.
		upload, err := core.NewMultipartUpload(t.Context(), "sweep", "files/"+expired+"/14", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.PutObjectPart(t.Context(), "sweep", "files/"+expired+"/14", upload, 1,
			bytes.NewReader(randomBytes(1000)), 1000, minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
		// Objects outside the layout (the start-up probe's, anyone's) are no job.
		if _, err := client.PutObject(t.Context(), "sweep", "files/README", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}

		listed, err := b.Jobs()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{expired, live}
		slices.Sort(want)
		if diff := cmp.Diff(want, sortedKeys(listed)); diff != "" {
			t.Errorf("Jobs (-want +got):\n%s", diff)
		}
		for id, at := range listed {
			if at.Before(before) || at.After(time.Now().Add(time.Minute)) {
				t.Errorf("job %s last changed at %v, want about now", id, at)
			}
		}
		if err := b.RemoveJob(expired); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"files/README", "files/" + live + "/7"}, objectKeys(t, client, "sweep")); diff != "" {
			t.Errorf("objects after RemoveJob (-want +got):\n%s", diff)
		}
		checkNoUploads(t, client, "sweep")
	})

	t.Run("download URLs serve the file straight from the store", func(t *testing.T) {
		b := open(t, "links")
		job := jobs.NewID()
		content := randomBytes(1 << 16)
		if _, err := b.Write(job, 28, "a1", bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		link, err := b.DownloadURL(t.Context(), job, 28)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(link)
		if u.Query().Get("X-Amz-Signature") == "" || u.Query().Get("X-Amz-Expires") != "300" {
			t.Errorf("URL %s: want a presigned URL valid 300 s", link)
		}
		resp := proctest.Get(t, http.DefaultClient, link)
		if !bytes.Equal(resp.Body, content) || resp.Header.Get("Content-Disposition") != `attachment; filename=28.bin` {
			t.Errorf("GET the URL = %d, %d bytes, Content-Disposition %q; want the file, named 28.bin",
				resp.Status, len(resp.Body), resp.Header.Get("Content-Disposition"))
		}
		if resp := proctest.Get(t, http.DefaultClient, link, "Range", "bytes=100-199"); resp.Status != http.StatusPartialContent || !bytes.Equal(resp.Body, content[100:200]) {
			t.Errorf("GET the URL with Range = %d, %d bytes; want 206 with bytes 100-199", resp.Status, len(resp.Body))
		}
		if _, err := b.DownloadURL(t.Context(), job, 35); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("URL of a file not stored: %v, want ErrNotFound", err)
		}
	})

	t.Run("the start-up check writes only a probe it deletes", func(t *testing.T) {
		open(t, "check")
		open(t, "check", func(c *storage.BucketConfig) { c.ReadOnly = true })
		if keys := objectKeys(t, client, "check"); len(keys) != 0 {
			t.Errorf("the check left %v in the bucket", keys)
		}
	})

	t.Run("the start-up check says what is wrong", func(t *testing.T) {
		refusing := proctest.StartS3(t, devbin.S3Options{RefuseCredentials: true})
		nothing := unusedEndpoint(t)
		ignoring := stripConditions(t, s3.Endpoint())
		cases := []struct {
			name string
			edit func(*storage.BucketConfig)
			want []string
		}{
			{"no such bucket", func(c *storage.BucketConfig) { c.Bucket = "missing" },
				[]string{`bucket "missing" does not exist`, "create it", "aws s3 mb s3://missing"}},
			{"nothing answers", func(c *storage.BucketConfig) { c.Endpoint = nothing },
				[]string{"check LONGHAUL_S3_ENDPOINT", nothing}},
			{"refused credentials", func(c *storage.BucketConfig) { c.Endpoint = refusing.Endpoint() },
				[]string{"refused the credentials", "AWS_ACCESS_KEY_ID"}},
			{"refused credentials, read-only", func(c *storage.BucketConfig) { c.Endpoint = refusing.Endpoint(); c.ReadOnly = true },
				[]string{"refused the credentials", "AWS_ACCESS_KEY_ID"}},
			{"conditional writes ignored", func(c *storage.BucketConfig) { c.Endpoint = ignoring },
				[]string{"ignores conditional writes", "If-None-Match"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				cfg := bucketConfig(s3, "check")
				tc.edit(&cfg)
				_, err := storage.NewBucket(t.Context(), cfg)
				if err == nil {
					t.Fatal("NewBucket succeeded")
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("NewBucket = %v; want it to say %q", err, w)
					}
				}
			})
		}
		if keys := objectKeys(t, client, "check"); len(keys) != 0 {
			t.Errorf("the failed checks left %v in the bucket", keys)
		}
	})
}

func TestParseBucketURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://files", "files", "", true},
		{"s3://files/", "files", "", true},
		{"s3://files/longhaul", "files", "longhaul", true},
		{"s3://files/a/b/", "files", "a/b", true},
		{"https://files/x", "", "", false},
		{"s3:///x", "", "", false},
		{"s3://Not_A_Bucket", "", "", false},
		{"s3://files?x=1", "", "", false},
		{"files", "", "", false},
	} {
		bucket, prefix, err := storage.ParseBucketURL(tc.in)
		if (err == nil) != tc.ok || bucket != tc.bucket || prefix != tc.prefix {
			t.Errorf("ParseBucketURL(%q) = %q, %q, %v; want %q, %q, ok %v", tc.in, bucket, prefix, err, tc.bucket, tc.prefix, tc.ok)
		}
	}
}

// bucketConfig is the configuration of a bucket of the test server, with files under
// files/ and the smallest part size, so that a few MiB make an upload in parts.
func bucketConfig(s3 *devbin.S3, bucket string) storage.BucketConfig {
	c := s3.BucketConfig(bucket)
	c.Prefix, c.PartSize = "files", storage.PartSizeMin
	return c
}

func readAll(t *testing.T, b *storage.Bucket, job string, fileID int64) []byte {
	t.Helper()
	f, err := b.Open(job, fileID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != f.Size {
		t.Errorf("read %d bytes of a file whose size is %d", len(data), f.Size)
	}
	return data
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n)}).Read(b)
	return b
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("the source broke off") }

// checkNoUploads checks that no upload in parts is left unfinished in a bucket.
func checkNoUploads(t *testing.T, client *minio.Client, bucket string) {
	t.Helper()
	for up := range client.ListIncompleteUploads(t.Context(), bucket, "", true) {
		if up.Err != nil {
			t.Fatal(up.Err)
		}
		t.Errorf("an upload of %s is left unfinished in bucket %s", up.Key, bucket)
	}
}

func objectKeys(t *testing.T, client *minio.Client, bucket string) []string {
	t.Helper()
	var keys []string
	for obj := range client.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys(m map[string]time.Time) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// unusedEndpoint is the URL of a loopback port that nothing listens on.
func unusedEndpoint(t *testing.T) string {
	t.Helper()
	port, err := devbin.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// stripConditions puts a proxy in front of an S3 server that drops If-None-Match from every
// request, as a store that does not know conditional writes ignores it, and returns its URL.
func stripConditions(t *testing.T, endpoint string) string {
	t.Helper()
	target, _ := url.Parse(endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("If-None-Match")
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
