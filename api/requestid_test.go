package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/requestid"
	"github.com/longhaul-dev/longhaul/tasks"
)

// The tests' client is on loopback: a proxy list with 127.0.0.1 trusts it, one without it
// does not.
func TestRequestIDs(t *testing.T) {
	cases := []struct {
		name    string
		proxies []string
		sent    string // X-Request-ID of the request; empty for none
		kept    bool
	}{
		{"from a trusted proxy", []string{"127.0.0.1"}, "edge-7f3a9c", true},
		{"from a trusted range", []string{"10.0.0.0/8", "127.0.0.0/8"}, "3b241101-e2bb-4255-8caf-4136c566a962", true},
		{"from an untrusted peer", []string{"10.0.0.0/8"}, "spoofed-1", false},
		{"with no proxies at all", nil, "spoofed-2", false},
		{"malformed, from a trusted proxy", []string{"127.0.0.1"}, "two words", false},
		{"none sent", []string{"127.0.0.1"}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs lockedBuffer
			e := newEnvWith(t, api.Config{TrustedProxies: c.proxies}, envOptions{log: &logs})
			var header []string
			if c.sent != "" {
				header = []string{requestid.Header, c.sent}
			}
			resp, body := e.do(t, "POST", "/v1/download/initiate?note=secret-in-query", "application/json",
				`{"file_ids":[70000]}`, header...)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("initiate = %d %s", resp.StatusCode, body)
			}
			got := resp.Header.Get(requestid.Header)
			switch {
			case c.kept && got != c.sent:
				t.Errorf("X-Request-ID = %q, want the proxy's %q kept", got, c.sent)
			case !c.kept && (got == c.sent || !requestid.Valid(got)):
				t.Errorf("X-Request-ID = %q, want a fresh id in place of %q", got, c.sent)
			}

			// The job's task carries the id to the worker.
			info, err := e.inspector().GetTaskInfo(tasks.Queue, jobIDOf(t, body))
			if err != nil {
				t.Fatal(err)
			}
			p, err := tasks.ParseDownloadPayload(info.Payload)
			if err != nil || p.RequestID != got {
				t.Errorf("the task's request id = %q (%v), want %q", p.RequestID, err, got)
			}

			// Every line the request logged carries it; the access line names the route, not
			// the URL.
			lines := linesWith(logs.String(), "request_id="+got)
			if !containsAll(lines, "msg=request", "method=POST", "route=/v1/download/initiate", "status=202") {
				t.Errorf("no access line with the request's id, method, route and status among:\n%s", logs.String())
			}
			if !containsAll(lines, `msg="job accepted"`) {
				t.Errorf("the job's acceptance is not logged with the request's id:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), "secret-in-query") {
				t.Errorf("a log line holds the query string:\n%s", logs.String())
			}
		})
	}
}

func TestEveryAnswerHasARequestID(t *testing.T) {
	e := newEnv(t, api.Config{})
	seen := map[string]bool{}
	for _, path := range []string{"/healthz", "/v1/download/status/dl_nope", "/v1/no-such-route", "/"} {
		resp, _ := e.do(t, "GET", path, "", "")
		id := resp.Header.Get(requestid.Header)
		if !requestid.Valid(id) || seen[id] {
			t.Errorf("GET %s: X-Request-ID = %q, want a fresh id (ids before: %v)", path, id, seen)
		}
		seen[id] = true
	}
}

// jobIDOf reads the job id of an initiate answer.
func jobIDOf(t *testing.T, body string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `"job_id":"`)
	id, _, _ := strings.Cut(rest, `"`)
	if !ok || id == "" {
		t.Fatalf("no job_id in %s", body)
	}
	return id
}

// linesWith returns the lines of text that contain s.
func linesWith(text, s string) []string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// containsAll reports whether one of lines contains every one of parts.
func containsAll(lines []string, parts ...string) bool {
	for _, line := range lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
