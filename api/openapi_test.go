package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/jobs"
)

// docsPage stands in for the built documentation page in tests.
func docsPage() fstest.MapFS {
	return fstest.MapFS{
		"index.html": {Data: []byte(`<!doctype html><title>longhaul API</title><div id="docs"></div>`)},
		"docs.css":   {Data: []byte("body { margin: 0; }\n")},
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	c := newContract(t)
	if v := c.model.Version; !strings.HasPrefix(v, "3.1.") {
		t.Errorf("the document is OpenAPI %s, want 3.1", v)
	}
	if ok, errs := c.validator.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("not a valid OpenAPI 3.1 document: %s", describe(e))
		}
	}
}

// TestDocumentNamesEveryRoute: every route the router registers is in the document, with its
// method, and every operation of the document is a route, so neither can gain a path that the
// other lacks. A HEAD route is the document's GET of its path, as its description says.
func TestDocumentNamesEveryRoute(t *testing.T) {
	e := newEnv(t, api.Config{})
	routed := map[string]bool{}
	for _, r := range api.RoutesOf(e.api) {
		path := openAPIPath(r.Path)
		if path == "/monitoring/{path}" && !slices.Contains([]string{"GET", "HEAD", "POST", "DELETE"}, r.Method) {
			// The dashboard's catch-all takes every method, as asynqmon's router wants; asynqmon
			// itself answers only GET (so HEAD), POST and DELETE, which the document has.
			continue
		}
		routed[r.Method+" "+path] = true
	}
	documented := map[string]bool{}
	for path, item := range e.contract.model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented[strings.ToUpper(method)+" "+path] = true
			if strings.EqualFold(method, "GET") && !liveChannel(path) {
				documented["HEAD "+path] = true // the document says every such GET answers HEAD
			}
		}
	}
	for route := range routed {
		if !documented[route] {
			t.Errorf("%s is routed but api/openapi.yaml does not describe it", route)
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("api/openapi.yaml describes %s, which the router does not have", op)
		}
	}
	if len(routed) < 10 {
		t.Fatalf("only %d routes found: %v", len(routed), routed)
	}
}

// openAPIPath is a Gin route pattern as a path template of the document: /a/:b/*c is /a/{b}/{c}.
func openAPIPath(pattern string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestOpenAPIJSONIsTheDocument: /openapi.json is api/openapi.yaml as JSON, to anyone, with
// keys too: a client author needs the contract before having a key.
func TestOpenAPIJSONIsTheDocument(t *testing.T) {
	e := newEnv(t, api.Config{Auth: api.AuthKeys})
	resp, body := e.do(t, "GET", "/openapi.json", "", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var served, written any
	if err := json.Unmarshal([]byte(body), &served); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	// The YAML read as JSON would be, numbers as float64.
	if err := yaml.UnmarshalWithOptions(api.OpenAPIYAML(), &written, yaml.UseJSONUnmarshaler()); err != nil {
		t.Fatal(err)
	}
	asJSON, err := json.Marshal(written)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(asJSON, &written); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(written, served); diff != "" {
		t.Errorf("/openapi.json is not api/openapi.yaml (-written +served):\n%s", diff)
	}
}

func TestDocsPage(t *testing.T) {
	e := newEnv(t, api.Config{Auth: api.AuthKeys})
	for _, path := range []string{"/docs", "/docs/"} {
		resp, body := e.do(t, "GET", path, "", "")
		if resp.StatusCode != 200 || !strings.Contains(body, "longhaul API") {
			t.Errorf("GET %s = %d %q, want the page", path, resp.StatusCode, body)
		}
		// The viewer needs no more than the page's own policy: its scripts and styles are
		// files of its own, it fetches only /openapi.json and draws its icons from data: URLs.
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") ||
			strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s has Content-Security-Policy %q", path, csp)
		}
	}
	if resp, body := e.do(t, "GET", "/docs/docs.css", "", ""); resp.StatusCode != 200 || !strings.Contains(body, "margin") ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("GET /docs/docs.css = %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp, _ := e.do(t, "GET", "/docs/no-such-file.js", "", ""); resp.StatusCode != 404 {
		t.Errorf("GET /docs/no-such-file.js = %d, want 404", resp.StatusCode)
	}
}

// TestLiveMessagesMatchTheDocument holds what the live channels send to the document's
// message schemas: the golden files of every kind of message, and the messages of a real
// WebSocket and event stream, the error frame included.
func TestLiveMessagesMatchTheDocument(t *testing.T) {
	e := newEnv(t, api.Config{})
	goldens, err := filepath.Glob("testdata/*.json")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	schemaOf := map[string]string{"snapshot": "SnapshotMessage", "event-file": "FileEvent", "event-job": "JobEvent",
		"status": "JobStatus"}
	for _, path := range goldens {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		schema := ""
		for kind, s := range schemaOf {
			if strings.HasPrefix(name, kind+"-") {
				schema = s
			}
		}
		if schema == "" {
			t.Errorf("%s: no schema for this kind of golden file; add it here", name)
			continue
		}
		msg, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		msg = []byte(strings.TrimSpace(string(msg)))
		e.contract.checkMessage(t, schema, msg)
		if schema != "JobStatus" {
			e.contract.checkMessage(t, "LiveMessage", msg)
		}
	}

	id := e.newJob(t, 70000)
	conn := e.dial(t, id, nil)
	_, snapshot, err := conn.ReadMessage() // before the job moves on, as eventStream does
	if err != nil {
		t.Fatal(err)
	}
	sent := [][]byte{snapshot}
	stream := e.eventStream(t, id)
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 3})
	if _, err := e.store.Complete(context.Background(), id, "a"); err != nil {
		t.Fatal(err)
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			break
		}
		sent = append(sent, msg)
	}
	unknown := e.dial(t, jobs.NewID(), nil)
	if _, frame, err := unknown.ReadMessage(); err == nil {
		sent = append(sent, frame)
	}
	sent = append(sent, stream()...)
	if len(sent) != 7 {
		t.Errorf("got %d messages, want a snapshot and two events on each channel, and the error frame:\n%s",
			len(sent), sent)
	}
	for _, msg := range sent {
		e.contract.checkMessage(t, "LiveMessage", msg)
	}
}

// eventStream opens the job's event stream; what it returns reads the data of every event
// until the stream ends.
func (e *env) eventStream(t *testing.T, id string) func() [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/download/"+id+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	e.contract.check(t, req, "", resp, nil)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	// The snapshot is read before the caller moves the job on: read later, it could already
	// be the finished job's, which no event follows.
	var data [][]byte
	for len(data) == 0 && sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			data = append(data, []byte(strings.TrimPrefix(line, "data: ")))
		}
	}
	return func() [][]byte {
		defer resp.Body.Close()
		end := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "event: end":
				end = true
			case strings.HasPrefix(line, "data: ") && !end:
				data = append(data, []byte(strings.TrimPrefix(line, "data: ")))
			}
		}
		if !end {
			t.Error("the event stream ended without event: end")
		}
		return data
	}
}

// TestUndescribedAnswersFail shows that the check of env.do is not a formality: answers and
// requests the document does not describe are reported.
func TestUndescribedAnswersFail(t *testing.T) {
	c := newContract(t)
	send := func(method, path string) *http.Request {
		req, _ := http.NewRequest(method, "http://127.0.0.1"+path, nil)
		return req
	}
	get := func(path string) *http.Request { return send("GET", path) }
	answer := func(status int, body string, header ...string) *http.Response {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}}
		for i := 0; i+1 < len(header); i += 2 {
			resp.Header.Set(header[i], header[i+1])
		}
		return resp
	}
	id := jobs.NewID()
	status := `{"job_id":"` + id + `","status":"queued","seq":0,"epoch":"e1","progress":{"percent":0,"files_total":1,"files_done":0,` +
		`"files_ready":0,"files_unavailable":0,"files_failed":0},"files":[{"file_id":7,"status":"queued","percent":0}],` +
		`"error":null,"created_at":"2026-11-29T22:00:00Z","updated_at":"2026-11-29T22:00:00Z","finished_at":null,"poll_after_ms":1000}`
	cases := []struct {
		name string
		req  *http.Request
		resp *http.Response
		body string
		want string // in the finding; empty: no finding
	}{
		{"the status as documented", get("/v1/download/status/" + id),
			answer(200, "", "ETag", `"0"`, "Cache-Control", "no-store"), status, ""},
		{"a field the document lacks", get("/v1/download/status/" + id),
			answer(200, "", "ETag", `"0"`, "Cache-Control", "no-store"), strings.Replace(status, `"seq"`, `"sequence"`, 1), "seq"},
		{"a required header missing", get("/v1/download/status/" + id),
			answer(200, "", "Cache-Control", "no-store"), status, "ETag"},
		{"a status code the route does not answer", get("/v1/download/status/" + id),
			answer(418, ""), `{"error":{"code":"internal","message":"teapot"}}`, "418"},
		{"an error code outside the list", get("/v1/download/status/" + id),
			answer(404, ""), `{"error":{"code":"gone","message":"no"}}`, "$.error.code"},
		{"a routed path the document lacks", get("/v1/download/" + id + "/archive"),
			answer(200, ""), `{}`, "archive"},
		{"an unknown path answered as unknown", get("/v1/download/" + id + "/archive"),
			answer(404, ""), `{"error":{"code":"not_found","message":"no such endpoint"}}`, ""},
		{"a malformed job id refused", get("/v1/download/status/dl_nope"),
			answer(400, ""), `{"error":{"code":"invalid_request","message":"bad id","field":"job_id"}}`, ""},
		{"a malformed job id accepted", get("/v1/download/status/dl_nope"),
			answer(200, "", "ETag", `"0"`, "Cache-Control", "no-store"), status, "took a request"},
		{"a query parameter the operation does not name, ignored", get("/v1/download/status/" + id + "?_=1733"),
			answer(200, "", "ETag", `"0"`, "Cache-Control", "no-store"), status, ""},
		{"a method refused with the document's Allow", send("PUT", "/v1/download/status/"+id),
			answer(405, "", "Allow", "GET, HEAD"), `{"error":{"code":"invalid_request","message":"no"}}`, ""},
		{"a method refused with another Allow", send("PUT", "/v1/download/status/"+id),
			answer(405, "", "Allow", "GET, HEAD, PUT"), `{"error":{"code":"invalid_request","message":"no"}}`, "Allow"},
		{"overlapping paths: both templates' methods", send("PUT", "/v1/download/initiate"),
			answer(405, "", "Allow", "POST, DELETE"), `{"error":{"code":"invalid_request","message":"no"}}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			c.check(rec, tc.req, "", tc.resp, []byte(tc.body))
			got := strings.Join(rec.errors, "\n")
			if tc.want == "" && got != "" {
				t.Errorf("reported %s", got)
			} else if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("findings %q do not name %q", got, tc.want)
			}
		})
	}

	t.Run("a live message with a renamed field", func(t *testing.T) {
		rec := &recorder{TB: t}
		c.checkMessage(rec, "FileEvent", []byte(`{"type":"file","seq":2,"job_id":"`+id+`","file_id":7,"status":"ready","percent":100,"url":"/x"}`))
		if len(rec.errors) == 0 {
			t.Error("an undocumented field passed")
		}
	})
}

// recorder is a testing.TB that keeps the errors reported to it instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (r *recorder) Helper() {}
