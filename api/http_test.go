package api_test

import (
	"strings"
	"testing"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/jobs"
)

// TestHTTPDetails holds the details that load balancers, caches and strict clients rely
// on, each with the answer it must get.
func TestHTTPDetails(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000, 70007)
	if _, err := e.files.Write(id, 70000, "a", strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 10})
	resp, _ := e.do(t, "GET", "/v1/download/status/"+id, "", "")
	etag := resp.Header.Get("ETag")
	file := "/v1/download/" + id + "/files/70000"

	cases := []struct {
		name, method, path, contentType, body string
		header                                []string
		status                                int
		wantHeader                            map[string]string // "" asks only that it is there
		wantBody                              string            // a substring; "-" for no body at all
	}{
		{name: "wrong method on status", method: "POST", path: "/v1/download/status/" + id, status: 405,
			wantHeader: map[string]string{"Allow": "GET, HEAD"}, wantBody: `"code":"invalid_request"`},
		// DELETE /v1/download/{job_id} matches this path too (and refuses its id).
		{name: "wrong method on initiate", method: "PUT", path: "/v1/download/initiate", status: 405,
			wantHeader: map[string]string{"Allow": "POST, DELETE"}},
		{name: "wrong method on the page", method: "DELETE", path: "/", status: 405,
			wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "HEAD /healthz", method: "HEAD", path: "/healthz", status: 200, wantBody: "-"},
		{name: "HEAD /readyz", method: "HEAD", path: "/readyz", status: 200, wantBody: "-"},
		{name: "HEAD status", method: "HEAD", path: "/v1/download/status/" + id, status: 200,
			wantHeader: map[string]string{"ETag": etag}, wantBody: "-"},
		{name: "HEAD file", method: "HEAD", path: file, status: 200,
			wantHeader: map[string]string{"Content-Length": "10", "Accept-Ranges": "bytes"}, wantBody: "-"},
		{name: "HEAD the page", method: "HEAD", path: "/jobs/" + id, status: 200, wantBody: "-"},
		{name: "If-None-Match weak", method: "GET", path: "/v1/download/status/" + id,
			header: []string{"If-None-Match", "W/" + etag}, status: 304, wantBody: "-"},
		{name: "If-None-Match star", method: "GET", path: "/v1/download/status/" + id,
			header: []string{"If-None-Match", "*"}, status: 304, wantBody: "-"},
		{name: "If-None-Match list", method: "GET", path: "/v1/download/status/" + id,
			header: []string{"If-None-Match", `"1", ` + etag + `, W/"xyz"`}, status: 304, wantBody: "-"},
		{name: "If-None-Match other tags", method: "GET", path: "/v1/download/status/" + id,
			header: []string{"If-None-Match", `"999", W/"1"`}, status: 200, wantBody: `"job_id"`},
		{name: "unsatisfiable Range", method: "GET", path: file, header: []string{"Range", "bytes=100-200"},
			status: 416, wantHeader: map[string]string{"Content-Range": "bytes */10", "Content-Type": "application/json; charset=utf-8"},
			wantBody: `"code":"invalid_request"`},
		{name: "a field name in other case", method: "POST", path: "/v1/download/initiate", contentType: "application/json",
			body: `{"FILE_IDS": [7]}`, status: 400, wantBody: `"code":"invalid_request"`},
		{name: "a field twice", method: "POST", path: "/v1/download/initiate", contentType: "application/json",
			body: `{"file_ids":[7],"file_ids":[14]}`, status: 400, wantBody: `"field":"file_ids"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.keys(t)
			resp, body := e.do(t, c.method, c.path, c.contentType, c.body, c.header...)
			if resp.StatusCode != c.status {
				t.Fatalf("%s %s = %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.status)
			}
			for k, v := range c.wantHeader {
				if got := resp.Header.Get(k); got == "" || (v != "" && got != v) {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			switch {
			case c.wantBody == "-" && body != "":
				t.Errorf("body %q, want none", body)
			case c.wantBody != "-" && !strings.Contains(body, c.wantBody):
				t.Errorf("body %s, want it to hold %s", body, c.wantBody)
			}
			if c.status >= 400 && e.keys(t) != before {
				t.Errorf("the refusal wrote to Redis")
			}
		})
	}
}
