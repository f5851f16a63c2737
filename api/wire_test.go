package api_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/jobs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with what the API sends now")

// TestWireFormat pins the bytes of the status body, the snapshot and every kind of live
// event against golden files in testdata/. The events are made by the store's Lua scripts
// and the snapshot and status body by Go: the golden files hold the two to one format.
// After a deliberate change of the contract, run go test ./api -run WireFormat -update.
func TestWireFormat(t *testing.T) {
	clock := time.Date(2026, 11, 29, 22, 0, 0, 0, time.UTC)
	e := newEnvWith(t, api.Config{}, envOptions{store: jobs.Options{Now: func() time.Time { return clock },
		NewEpoch: func() string { return "e1" }}})
	ctx := context.Background()
	const canceled, completed, failed = "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB", "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YC", "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YD"
	for _, id := range []string{canceled, completed, failed} {
		if err := e.store.Create(ctx, id, []int64{70000, 70001, 70007, 70014}); err != nil {
			t.Fatal(err)
		}
	}
	conn := e.dial(t, canceled, nil)
	next := func(name string) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		golden(t, name, msg)
	}
	next("snapshot-queued")

	if _, err := e.store.Claim(ctx, canceled, "a"); err != nil {
		t.Fatal(err)
	}
	next("event-job-processing")
	clock = clock.Add(31 * time.Second)
	steps := []struct {
		name string
		file jobs.File
	}{
		{"event-file-processing", jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 62.5, Attempt: 1}},
		{"event-file-ready", jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Attempt: 1, Size: 1048576}},
		{"event-file-unavailable", jobs.File{ID: 70001, Status: jobs.StatusUnavailable, Percent: 100,
			Error: "file 70001 is not available"}},
		{"event-file-failed", jobs.File{ID: 70007, Status: jobs.StatusFailed, Percent: 100, Attempt: 4,
			Error: "source timed out preparing file 70007; gave up after 4 tries"}},
	}
	for _, s := range steps {
		e.update(t, canceled, s.file)
		next(s.name)
	}
	_, body := e.do(t, "GET", "/v1/download/status/"+canceled, "", "")
	golden(t, "status-processing", []byte(body))

	lost := jobs.Waiting{Reason: jobs.WaitingWorkerLost, Since: clock, ResumeBy: clock.Add(40 * time.Second)}
	if marked, err := e.store.MarkWaiting(ctx, canceled, lost); err != nil || !marked {
		t.Fatalf("mark waiting: %v, %v", marked, err)
	}
	next("event-job-waiting")
	_, body = e.do(t, "GET", "/v1/download/status/"+canceled, "", "")
	golden(t, "status-waiting", []byte(body))
	if _, err := e.store.Claim(ctx, canceled, "b"); err != nil {
		t.Fatal(err)
	}
	next("event-job-resumed")

	if _, err := e.store.Cancel(ctx, canceled); err != nil {
		t.Fatal(err)
	}
	next("event-file-canceled")
	next("event-job-canceled")
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after the final event: %v, want close 1000", err)
	}

	for _, id := range []string{completed, failed} {
		if _, err := e.store.Claim(ctx, id, "a"); err != nil {
			t.Fatal(err)
		}
		e.update(t, id, jobs.File{ID: 70001, Status: jobs.StatusUnavailable, Percent: 100})
		e.update(t, id, jobs.File{ID: 70014, Status: jobs.StatusUnavailable, Percent: 100})
	}
	e.update(t, completed, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 3})
	e.update(t, completed, jobs.File{ID: 70007, Status: jobs.StatusReady, Percent: 100, Size: 4})
	if _, err := e.store.Complete(ctx, completed, "a"); err != nil {
		t.Fatal(err)
	}
	_, body = e.do(t, "GET", "/v1/download/status/"+completed, "", "")
	golden(t, "status-completed", []byte(body))

	conn = e.dial(t, failed, nil)
	next("snapshot-processing")
	timeout := jobs.Error{Code: jobs.ErrorCodeTimeout, Message: "the job ran out of time"}
	if err := e.store.Fail(ctx, failed, "a", timeout); err != nil {
		t.Fatal(err)
	}
	next("event-file-failed-by-the-job")
	conn.ReadMessage() // the job's other open file, failed the same way
	next("event-job-failed")
}

// golden compares got with testdata/name.json, or writes it there with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run WireFormat -update to write it)", err)
	}
	if !bytes.Equal(bytes.TrimSuffix(want, []byte("\n")), got) {
		t.Errorf("%s changed:\n got %s\nwant %s", name, got, want)
	}
}
