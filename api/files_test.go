package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/storage"
	"github.com/minio/minio-go/v7"
)

// TestFileDownloadRedirectsToTheBucketAfterTheChecks: with files in a bucket and downloads
// redirected, a file is answered with a 302 to a presigned URL of the bucket, but only once
// the caller may read the job and the file is ready; the URL serves the file, ranges too.
func TestFileDownloadRedirectsToTheBucketAfterTheChecks(t *testing.T) {
	s3 := proctest.StartS3(t, devbin.S3Options{}, "files")
	bucket, err := storage.NewBucket(t.Context(), s3.BucketConfig("files"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, api.Config{Auth: api.AuthKeys}, envOptions{bucket: bucket})
	owner, ownerKey := e.key(t, "alice", auth.RoleClient)
	_, otherKey := e.key(t, "bob", auth.RoleClient)
	id := e.ownedJob(t, "key:"+owner.ID) // 70000 ready, 70007 preparing
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(t *testing.T, fileID, key string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/download/"+id+"/files/"+fileID, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		e.contract.check(t, req, "", resp, body)
		return resp
	}

	for _, tc := range []struct {
		name, file, key string
		want            int
	}{
		{"no key", "70000", "", http.StatusUnauthorized},
		{"another client's job", "70000", otherKey, http.StatusNotFound},
		{"a file not ready", "70007", ownerKey, http.StatusNotFound},
		{"the owner, a ready file", "70000", ownerKey, http.StatusFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, tc.file, tc.key)
			if resp.StatusCode != tc.want {
				t.Errorf("GET file %s = %d, want %d", tc.file, resp.StatusCode, tc.want)
			}
			if loc := resp.Header.Get("Location"); (loc != "") != (tc.want == http.StatusFound) {
				t.Errorf("Location = %q on a %d", loc, resp.StatusCode)
			}
		})
	}

	resp := get(t, "70000", ownerKey)
	link := resp.Header.Get("Location")
	if !strings.HasPrefix(link, s3.Endpoint()+"/files/"+id+"/70000?") || !strings.Contains(link, "X-Amz-Signature=") ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("redirect to %q with Cache-Control %q; want a presigned URL of the bucket, not to be kept",
			link, resp.Header.Get("Cache-Control"))
	}
	if r := proctest.Get(t, http.DefaultClient, link); string(r.Body) != "0123456789" {
		t.Errorf("GET the presigned URL = %d %q, want the file", r.Status, r.Body)
	}
	if r := proctest.Get(t, http.DefaultClient, link, "Range", "bytes=2-5"); r.Status != http.StatusPartialContent || string(r.Body) != "2345" {
		t.Errorf("GET the presigned URL with Range bytes=2-5 = %d %q, want 206 \"2345\"", r.Status, r.Body)
	}

	// A file the record calls ready, gone from the bucket (removed by hand, say).
	client, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.RemoveObject(t.Context(), "files", id+"/70000", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if resp := get(t, "70000", ownerKey); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a ready file gone from the bucket = %d, want 404", resp.StatusCode)
	}
}
