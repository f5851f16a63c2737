package api_test

import (
	"strings"
	"testing"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
)

func TestStatusIsOneRoundTripAndA304ReadsNoRecord(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000, 70001)
	sent := redistest.RecordCommands(e.rdb)
	path := "/v1/download/status/" + id

	var etag, first string
	cmds := sent.During(func() {
		resp, body := e.do(t, "GET", path, "", "")
		etag, first = resp.Header.Get("ETag"), body
	})
	if strings.Join(cmds, " ") != "evalsha" && strings.Join(cmds, " ") != "evalsha eval" { // EVAL loads the script once
		t.Errorf("a first 200 sent %v, want one script", cmds)
	}
	cmds = sent.During(func() {
		if resp, _ := e.do(t, "GET", path, "", "", "If-None-Match", etag); resp.StatusCode != 304 {
			t.Errorf("If-None-Match %s = %d, want 304", etag, resp.StatusCode)
		}
	})
	if len(cmds) != 1 || cmds[0] != "evalsha" {
		t.Errorf("a 304 sent %v, want one EVALSHA", cmds)
	}
	cmds = sent.During(func() {
		if _, body := e.do(t, "GET", path, "", ""); body != first {
			t.Errorf("a second 200 at one seq = %s, want the first's body %s", body, first)
		}
	})
	if len(cmds) != 1 || cmds[0] != "evalsha" {
		t.Errorf("a second 200 sent %v, want one EVALSHA", cmds)
	}

	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 30})
	resp, body := e.do(t, "GET", path, "", "", "If-None-Match", etag)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag || !strings.Contains(body, `"percent":30`) {
		t.Errorf("after an update: %d, ETag %s, body %s; want the new state, never the kept body", resp.StatusCode,
			resp.Header.Get("ETag"), body)
	}
}

// The 304 answers only the job's owner: another client's tag of the job is not found, as
// for a job that does not exist, and a kept body is never served to it either.
func TestStatusOfAnotherClientsJobIsNotFoundWhateverItsTag(t *testing.T) {
	e := newEnv(t, api.Config{Auth: api.AuthKeys})
	owner, ownerKey := e.key(t, "alice", auth.RoleClient)
	_, otherKey := e.key(t, "bob", auth.RoleClient)
	id := e.ownedJob(t, "key:"+owner.ID)
	path := "/v1/download/status/" + id

	resp, _ := e.do(t, "GET", path, "", "", "Authorization", "Bearer "+ownerKey)
	etag := resp.Header.Get("ETag")
	for _, tag := range []string{"", etag, "*"} {
		resp, body := e.do(t, "GET", path, "", "", "Authorization", "Bearer "+otherKey, "If-None-Match", tag)
		if resp.StatusCode != 404 || resp.Header.Get("ETag") != "" || !strings.Contains(body, `"not_found"`) {
			t.Errorf("another client with If-None-Match %q: %d, ETag %q, %s; want 404 not_found", tag,
				resp.StatusCode, resp.Header.Get("ETag"), body)
		}
	}
	if resp, _ := e.do(t, "GET", path, "", "", "Authorization", "Bearer "+ownerKey, "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("the owner with its tag: %d, want 304", resp.StatusCode)
	}
}
