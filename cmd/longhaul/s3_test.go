package main

// The whole program with its files in a bucket of an S3 server (moto_server, started by
// the process kit): the demo's scenarios with downloads streamed and redirected, a worker
// killed in the middle of an upload, and the SIGTERM test of durability_test.go, through
// the function it shares with its directory twin. The other durability tests (SIGSTOP, the
// Redis kill) do not run on a bucket here: what they check lies in Redis and the fencing of
// attempts, and `make chaos` runs a bucket under worker kills and a Redis crash.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/origin"
	"github.com/minio/minio-go/v7"
)

// fileStorage points the settings of a test's processes at where their files are kept.
type fileStorage func(t *testing.T, env map[string]string)

// inDirectory keeps files in the directory that fastEnv names.
func inDirectory(*testing.T, map[string]string) {}

// inBucket keeps files in a bucket of an S3 server of the test's own.
func inBucket(t *testing.T, env map[string]string) { useBucket(t, env) }

// Where the tests keep files on their S3 server.
const (
	testBucket = "longhaul"
	testPrefix = "files"
)

// useBucket starts an S3 server with a bucket for t, points env at it instead of a
// directory, and returns the server.
func useBucket(t *testing.T, env map[string]string) *devbin.S3 {
	t.Helper()
	s3 := proctest.StartS3(t, devbin.S3Options{}, testBucket)
	delete(env, "LONGHAUL_STORAGE_DIR")
	maps.Copy(env, s3.Settings(testBucket, testPrefix))
	return s3
}

func TestSIGTERMWorkerResumesFromCheckpointOnS3(t *testing.T) { resumeAfterSIGTERM(t, inBucket) }

// TestDemoScenariosOnS3 runs the demo's three scenarios with files in a bucket. One server
// streams downloads from the bucket, another answers them with a redirect to it: both give
// a ready file's bytes, ranges too. The bucket then holds the ready files and nothing else.
func TestDemoScenariosOnS3(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	env := fastEnv(t, rs.URL())
	s3 := useBucket(t, env)

	t.Run("a missing bucket stops the process", func(t *testing.T) {
		missing := maps.Clone(env)
		missing["LONGHAUL_STORAGE"] = "s3://missing"
		err := run(t.Context(), []string{"longhaul", "worker"}, func(k string) string { return missing[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `bucket "missing" does not exist`) || !strings.Contains(err.Error(), "LONGHAUL_STORAGE") {
			t.Errorf("run on a missing bucket = %v, want a refusal that says how to fix it", err)
		}
	})

	streaming := startRun(t, "serve", env)
	redirectEnv := maps.Clone(env)
	redirectEnv["LONGHAUL_S3_DOWNLOADS"] = "redirect"
	redirecting := startRun(t, "api", redirectEnv)
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var mu sync.Mutex
	ready := map[string]int64{} // object key → size, of every ready file; guarded by mu
	runScenarios(t, []string{streaming}, func(t *testing.T, jobID string, f fileStatus) {
		streamed := proctest.Get(t, http.DefaultClient, streaming+f.DownloadURL)
		if streamed.Status != http.StatusOK || int64(len(streamed.Body)) != f.Size || f.Size < 2000 {
			t.Fatalf("GET %s = %d with %d bytes, want 200 with %d", f.DownloadURL, streamed.Status, len(streamed.Body), f.Size)
		}
		if r := proctest.Get(t, noRedirects, redirecting+f.DownloadURL); r.Status != http.StatusFound ||
			!strings.HasPrefix(r.Header.Get("Location"), s3.Endpoint()+"/"+testBucket+"/") {
			t.Errorf("GET %s on the redirecting server = %d to %q, want 302 to the bucket", f.DownloadURL, r.Status, r.Header.Get("Location"))
		}
		if r := proctest.Get(t, http.DefaultClient, redirecting+f.DownloadURL); !bytes.Equal(r.Body, streamed.Body) {
			t.Errorf("GET %s through the redirect = %d with %d bytes, not the %d bytes streamed", f.DownloadURL, r.Status, len(r.Body), len(streamed.Body))
		}
		for _, base := range []string{streaming, redirecting} {
			r := proctest.Get(t, http.DefaultClient, base+f.DownloadURL, "Range", "bytes=1000-1999")
			if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, streamed.Body[1000:2000]) {
				t.Errorf("GET %s%s with Range bytes=1000-1999 = %d with %d bytes, want 206 with those bytes", base, f.DownloadURL, r.Status, len(r.Body))
			}
		}
		mu.Lock()
		ready[objectKey(jobID, f.FileID)] = f.Size
		mu.Unlock()
	})

	client := s3Client(t, s3)
	stored := map[string]int64{}
	for obj := range client.ListObjects(t.Context(), testBucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		stored[obj.Key] = obj.Size
	}
	if diff := cmp.Diff(ready, stored); diff != "" {
		t.Errorf("the bucket holds other than the ready files (-ready +stored):\n%s", diff)
	}
	for up := range client.ListIncompleteUploads(t.Context(), testBucket, "", true) {
		t.Errorf("an upload of %s is left unfinished (%v)", up.Key, up.Err)
	}
}

// TestWorkerKilledMidUploadOnS3 kills a worker with SIGKILL while it uploads a big file in
// parts: its link to the bucket is slowed down so that the kill lands between two parts.
// Nothing of that file is visible in the bucket then; the job completes on another worker,
// each file is made ready exactly once by the audit, and every file stored is whole.
func TestWorkerKilledMidUploadOnS3(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease to expire (about a minute)")
	}
	t.Parallel()
	rs := redistest.Start(t, redistest.Options{})
	const sizeMax = 16 << 20
	env := fastEnv(t, rs.URL(), "LONGHAUL_FILE_TIME_MIN", "200ms", "LONGHAUL_FILE_TIME_MAX", "200ms",
		"LONGHAUL_FILE_SIZE_MAX", "16MiB", "LONGHAUL_S3_PART_SIZE", "5MiB", "LONGHAUL_FILE_CONCURRENCY", "2")
	s3 := useBucket(t, env)
	base := startRun(t, "api", env)
	slow := maps.Clone(env)
	slow["LONGHAUL_S3_ENDPOINT"] = slowLink(t, s3.Endpoint(), 4<<20)
	first := startChild(t, "worker", slow)
	store := jobs.NewStore(rs.Client(), jobs.Options{})
	bucket := s3Client(t, s3)
	core := minio.Core{Client: bucket}

	src := origin.Simulated{SizeMax: sizeMax}
	ids := bigFiles(src, 3, 11<<20) // three parts of 5 MiB at least
	p := postJob(client{t, base}, ids...)
	proctest.WaitUntil(t, time.Minute, "an upload with a part stored", func() bool {
		for up := range bucket.ListIncompleteUploads(t.Context(), testBucket, testPrefix+"/"+p.id+"/", true) {
			parts, err := core.ListObjectParts(t.Context(), testBucket, up.Key, up.UploadID, 0, 100)
			if err == nil && len(parts.ObjectParts) > 0 {
				return true
			}
		}
		return false
	})
	first.Kill()

	atKill := p.poll()
	cut := unfinishedUploads(t, bucket) // the killed worker's, by upload id
	for _, key := range cut {
		if _, err := bucket.StatObject(t.Context(), testBucket, key, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Errorf("%s, whose upload was cut, is visible in the bucket (%v); no part of it should be", key, err)
		}
	}
	for _, f := range atKill.Files {
		info, err := bucket.StatObject(t.Context(), testBucket, objectKey(p.id, f.FileID), minio.StatObjectOptions{})
		if f.Status == "ready" && (err != nil || info.Size != f.Size) {
			t.Errorf("file %d is ready with %d bytes, but the bucket has %d (%v)", f.FileID, f.Size, info.Size, err)
		}
		if err == nil && info.Size != src.Size(f.FileID) {
			t.Errorf("file %d is stored with %d bytes, not the whole %d", f.FileID, info.Size, src.Size(f.FileID))
		}
	}

	startChild(t, "worker", env)
	// asynq hands the task on once the dead worker's lease has expired and its recoverer
	// has run: about a minute, two at worst.
	final := p.untilDone(4 * time.Minute)
	checkCompleted(t, final, ids)
	checkAuditOnce(t, store, p.id, ids)
	for _, f := range final.Files {
		resp := proctest.Get(t, http.DefaultClient, base+f.DownloadURL)
		want, _ := io.ReadAll(src.Content(f.FileID))
		if sha256.Sum256(resp.Body) != sha256.Sum256(want) {
			t.Errorf("file %d downloads as %d bytes that are not its %d", f.FileID, len(resp.Body), len(want))
		}
	}
	// The killed worker could not abort its uploads: the janitor does once the job has
	// expired, and the bucket's lifecycle rule does after a day. The next worker's are done.
	if diff := cmp.Diff(cut, unfinishedUploads(t, bucket)); diff != "" {
		t.Errorf("unfinished uploads, by id (-the killed worker's +now):\n%s", diff)
	}
}

// unfinishedUploads are the uploads in parts not completed in the test bucket: the key of
// each by its upload id.
func unfinishedUploads(t *testing.T, bucket *minio.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	for up := range bucket.ListIncompleteUploads(t.Context(), testBucket, "", true) {
		if up.Err != nil {
			t.Fatal(up.Err)
		}
		out[up.UploadID] = up.Key
	}
	return out
}

// bigFiles returns n available file ids whose files are at least size bytes.
func bigFiles(src origin.Simulated, n int, size int64) []int64 {
	var ids []int64
	for id := int64(70000); len(ids) < n; id += 7 {
		if src.Size(id) >= size {
			ids = append(ids, id)
		}
	}
	return ids
}

// objectKey is where the bucket keeps a file of a job.
func objectKey(jobID string, fileID int64) string {
	return fmt.Sprintf("%s/%s/%d", testPrefix, jobID, fileID)
}

func s3Client(t *testing.T, s3 *devbin.S3) *minio.Client {
	t.Helper()
	c, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// slowLink is a TCP proxy to the S3 server at endpoint that carries at most rate bytes a
// second towards it on each connection, as a slow network to the store would, so that an
// upload takes long enough to be caught in the middle. It returns the proxy's URL, and
// closes it and its connections when the test ends.
func slowLink(t *testing.T, endpoint string, rate int) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn // guarded by mu; closed at the end
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "http://"))
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, upstream)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, upstream); c.Close() })
			wg.Go(func() { copySlowly(upstream, c, rate); upstream.Close() })
		}
	})
	return "http://" + l.Addr().String()
}

// copySlowly copies src to dst at about rate bytes a second.
func copySlowly(dst io.Writer, src io.Reader, rate int) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
		}
		if err != nil {
			return
		}
	}
}
