package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/client"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/internal/servetest"
)

// TestMain runs every test and example against one real `longhaul serve` with fast, small
// files; its address is in LONGHAUL_URL, where the examples read it.
func TestMain(m *testing.M) {
	os.Exit(servetest.Main(m, func(bin string, urls []string) {
		longhaulBin = bin
		os.Setenv("LONGHAUL_URL", urls[0])
	}, append(servetest.FastFiles(),
		// Webhooks to the tests' own receivers on loopback.
		"LONGHAUL_WEBHOOK_SECRET=whsec_"+base64.StdEncoding.EncodeToString([]byte("a client test's secret, 32 bytes")),
		"LONGHAUL_WEBHOOK_ALLOW=127.0.0.1/32",
		"LONGHAUL_WEBHOOK_ALLOW_HTTP=true")))
}

// longhaulBin is the binary TestMain built, for the tests that start a server of their own.
var longhaulBin string

// The demo's mixed scenario: ids divisible by 7 are available.
var mixed = []int64{70000, 70001, 70007, 70008}

func serverURL() string { return os.Getenv("LONGHAUL_URL") }

func newClient(t *testing.T, base string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startJob(t *testing.T, c *client.Client, ids ...int64) string {
	t.Helper()
	in, err := c.Initiate(t.Context(), ids, client.InitiateOptions{})
	if err != nil {
		t.Fatalf("initiate %v: %v", ids, err)
	}
	return in.JobID
}

// follow watches job id to the end and returns its events; an error event fails the test.
func follow(t *testing.T, c *client.Client, id string) []client.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var events []client.Event
	for ev := range c.Watch(ctx, id) {
		if ev.Type == client.EventError {
			t.Fatalf("watch of %s ended with %v after %d events", id, ev.Err, len(events))
		}
		events = append(events, ev)
	}
	if ctx.Err() != nil {
		t.Fatalf("watch of %s did not end within a minute: %d events", id, len(events))
	}
	checkEvents(t, events)
	return events
}

// checkEvents checks the promises of Watch: a snapshot first, seq and progress never
// going backwards, a finished file staying finished, and a terminal snapshot last.
func checkEvents(t *testing.T, events []client.Event) {
	t.Helper()
	var data []client.Event
	for _, ev := range events {
		if ev.Type != client.EventChannel {
			data = append(data, ev)
		}
	}
	if len(data) == 0 || data[0].Type != client.EventSnapshot {
		t.Fatalf("the first news is not a snapshot: %v", types(events))
	}
	files := map[int64]client.File{}
	for i, ev := range data {
		if i > 0 && (ev.Seq < data[i-1].Seq || ev.Progress.Percent < data[i-1].Progress.Percent) {
			t.Errorf("event %d (%s) has seq %d, percent %.1f after seq %d, percent %.1f",
				i, ev.Type, ev.Seq, ev.Progress.Percent, data[i-1].Seq, data[i-1].Progress.Percent)
		}
		var changed []client.File
		if ev.File != nil {
			changed = []client.File{*ev.File}
		}
		if ev.Job != nil {
			changed = ev.Job.Files
		}
		for _, f := range changed {
			prev, ok := files[f.ID]
			if ok && (f.Percent < prev.Percent || prev.Status.Terminal() && f.Status != prev.Status) {
				t.Errorf("file %d went from %s %.1f%% to %s %.1f%%", f.ID, prev.Status, prev.Percent, f.Status, f.Percent)
			}
			files[f.ID] = f
		}
	}
	last := data[len(data)-1]
	if last.Type != client.EventSnapshot || !last.Status.Terminal() {
		t.Errorf("the last event is %s %s, want a snapshot of a terminal job", last.Type, last.Status)
	}
}

func types(events []client.Event) []string {
	var out []string
	for _, ev := range events {
		out = append(out, fmt.Sprintf("%s:%d", ev.Type, ev.Seq))
	}
	return out
}

// channels are the channels a watch said it was on, in order.
func channels(events []client.Event) []client.Channel {
	var out []client.Channel
	for _, ev := range events {
		if ev.Type == client.EventChannel && ev.Channel != client.ChannelNone {
			out = append(out, ev.Channel)
		}
	}
	return out
}

// outcome is a job's end as a person reads it: its status and each file's.
func outcome(j *client.Job) string {
	parts := []string{string(j.Status)}
	for _, f := range j.Files {
		parts = append(parts, fmt.Sprintf("%d:%s", f.ID, f.Status))
	}
	return strings.Join(parts, " ")
}

const mixedOutcome = "completed 70000:ready 70001:unavailable 70007:ready 70008:unavailable"

func TestWatchFallsBackChannelByChannel(t *testing.T) {
	cases := []struct {
		name   string
		faults faults
		want   client.Channel
	}{
		{"websocket", faults{}, client.ChannelWebSocket},
		{"event stream when upgrades are refused", faults{refuseWebSocket: true}, client.ChannelSSE},
		{"polling when both are refused", faults{refuseWebSocket: true, refuseEvents: true}, client.ChannelPolling},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, serverURL(), tc.faults)
			c := newClient(t, p.URL)
			events := follow(t, c, startJob(t, c, mixed...))
			// Polling fills in while a live channel opens; no other live channel may deliver.
			got := channels(events)
			seen := map[client.Channel]bool{}
			for _, ch := range got {
				seen[ch] = true
			}
			delete(seen, client.ChannelPolling)
			if tc.want != client.ChannelPolling {
				delete(seen, tc.want)
			}
			if !slices.Contains(got, tc.want) || len(seen) > 0 {
				t.Errorf("channels %v, want %s and no other live channel", got, tc.want)
			}
			if got := outcome(events[len(events)-1].Job); got != mixedOutcome {
				t.Errorf("ended %q, want %q", got, mixedOutcome)
			}
			if tc.faults.refuseWebSocket {
				if ws := p.requests("/ws/"); len(ws) == 0 || ws[0].status != http.StatusBadRequest {
					t.Errorf("the server was not asked for a WebSocket that it refused: %+v", ws)
				}
			}
		})
	}
}

func TestWatchResyncsAfterAMissedEvent(t *testing.T) {
	for _, refuseWebSocket := range []bool{false, true} {
		name := map[bool]string{false: "websocket", true: "event stream"}[refuseWebSocket]
		t.Run(name, func(t *testing.T) {
			// Leave out the first event that says a file is ready.
			var mu sync.Mutex // guards dropped, written by the proxy's handler
			var dropped []byte
			drop := func(msg []byte) bool {
				mu.Lock()
				defer mu.Unlock()
				if dropped == nil && bytes.Contains(msg, []byte(`"type":"file"`)) &&
					bytes.Contains(msg, []byte(`"status":"ready"`)) {
					dropped = bytes.Clone(msg)
					return true
				}
				return false
			}
			p := newProxy(t, serverURL(), faults{refuseWebSocket: refuseWebSocket, drop: drop})
			c := newClient(t, p.URL)
			events := follow(t, c, startJob(t, c, 70000, 70007, 70014, 70021))
			mu.Lock()
			defer mu.Unlock()
			var droppedFile struct {
				FileID int64 `json:"file_id"`
			}
			if err := json.Unmarshal(dropped, &droppedFile); err != nil {
				t.Fatalf("no file event was dropped: %v", err)
			}
			// The news of the dropped event must come from a snapshot read mid-way, not from the end.
			healed := false
			for _, ev := range events[1 : len(events)-1] {
				if ev.Type == client.EventFile && ev.File.ID == droppedFile.FileID && ev.File.Status == client.StatusReady {
					t.Errorf("file %d was announced ready by an event the proxy dropped", ev.File.ID)
				}
				if ev.Type == client.EventSnapshot {
					if f, ok := ev.Job.File(droppedFile.FileID); ok && f.Status == client.StatusReady {
						healed = true
					}
				}
			}
			if !healed {
				t.Errorf("no resync snapshot showed file %d ready: %v", droppedFile.FileID, types(events))
			}
			if want := "completed 70000:ready 70007:ready 70014:ready 70021:ready"; outcome(events[len(events)-1].Job) != want {
				t.Errorf("ended %q, want %q", outcome(events[len(events)-1].Job), want)
			}
		})
	}
}

func TestWatchReconnectsWhenTheServerGoesAway(t *testing.T) {
	p := newProxy(t, serverURL(), faults{goAway: 2})
	c := newClient(t, p.URL)
	events := follow(t, c, startJob(t, c, mixed...))
	if n := len(p.requests("/ws/")); n < 3 {
		t.Errorf("%d WebSocket connections, want a reconnect after each of 2 going-away closes", n)
	}
	if got := outcome(events[len(events)-1].Job); got != mixedOutcome {
		t.Errorf("ended %q, want %q", got, mixedOutcome)
	}
}

// directBytes downloads a file from the server itself, past every proxy.
func directBytes(t *testing.T, id string, fileID int64) []byte {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/download/%s/files/%d", serverURL(), id, fileID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("direct download of %d: %s, %v", fileID, resp.Status, err)
	}
	return data
}

func TestDownloadResumesACutTransfer(t *testing.T) {
	p := newProxy(t, serverURL(), faults{cutFiles: true})
	c := newClient(t, p.URL)
	id := startJob(t, c, 70007, 70014)
	follow(t, c, id)

	t.Run("into a writer", func(t *testing.T) {
		var got bytes.Buffer
		n, err := c.Download(t.Context(), id, 70007, &got)
		if err != nil {
			t.Fatal(err)
		}
		want := directBytes(t, id, 70007)
		if n != int64(len(want)) || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("downloaded %d bytes (%d written), want the server's %d bytes", got.Len(), n, len(want))
		}
		gets := p.requests("/files/70007")
		if len(gets) != 2 {
			t.Fatalf("%d requests for the file, want the cut one and its resumption", len(gets))
		}
		etag := fmt.Sprintf(`"%d-%d"`, 70007, len(want))
		wantRange := fmt.Sprintf("bytes=%d-", len(want)/2)
		if r := gets[1]; r.header.Get("Range") != wantRange || r.header.Get("If-Range") != etag ||
			r.status != http.StatusPartialContent {
			t.Errorf("resumed with Range %q, If-Range %q, answered %d; want %q, %q, 206",
				r.header.Get("Range"), r.header.Get("If-Range"), r.status, wantRange, etag)
		}
	})

	t.Run("into a file, across calls", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "70014.bin")
		once := newClient(t, p.URL, client.WithRetries(0))
		if _, err := once.DownloadFile(t.Context(), id, 70014, path); !errors.Is(err, client.ErrUnreachable) {
			t.Fatalf("a cut download without retries: %v, want an error wrapping ErrUnreachable", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a partial download is at its final name: %v", err)
		}
		want := directBytes(t, id, 70014)
		part, err := os.ReadFile(path + "." + id + ".part")
		if err != nil || len(part) != len(want)/2 {
			t.Fatalf("part file holds %d bytes (%v), want the %d received", len(part), err, len(want)/2)
		}
		n, err := c.DownloadFile(t.Context(), id, 70014, path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if n != int64(len(want)) || !bytes.Equal(got, want) {
			t.Fatalf("saved %d bytes, want the server's %d", len(got), len(want))
		}
		if _, err := os.Stat(path + "." + id + ".part"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the part file is still there: %v", err)
		}
		gets := p.requests("/files/70014")
		last := gets[len(gets)-1]
		if last.method != http.MethodGet || last.header.Get("Range") != fmt.Sprintf("bytes=%d-", len(want)/2) ||
			last.status != http.StatusPartialContent {
			t.Errorf("the second call asked %s with Range %q (answered %d), want the rest of the part file",
				last.method, last.header.Get("Range"), last.status)
		}
	})

	t.Run("not ready", func(t *testing.T) {
		_, err := c.Download(t.Context(), id, 70001, io.Discard)
		if !errors.Is(err, client.ErrNotReady) {
			t.Errorf("download of a file not in the job: %v, want ErrNotReady", err)
		}
	})
}

func TestInitiateRetriesSafely(t *testing.T) {
	cases := []struct {
		name        string
		faults      faults
		wantCreated bool
		wantPause   time.Duration // the least time between the two attempts
	}{
		{"after 503 and its Retry-After", faults{unavailable: 1}, true, time.Second},
		{"after a lost answer, the same job", faults{loseAnswers: 1}, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, serverURL(), tc.faults)
			c := newClient(t, p.URL, client.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
			in, err := c.Initiate(t.Context(), mixed, client.InitiateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if in.Created != tc.wantCreated || in.TotalFiles != 4 {
				t.Errorf("created %v with %d files, want created %v with 4", in.Created, in.TotalFiles, tc.wantCreated)
			}
			tries := p.requests("/initiate")
			if len(tries) != 2 {
				t.Fatalf("%d initiate requests, want 2", len(tries))
			}
			key := tries[0].header.Get("Idempotency-Key")
			if key == "" || tries[1].header.Get("Idempotency-Key") != key {
				t.Errorf("idempotency keys %q then %q, want one key made for both", key, tries[1].header.Get("Idempotency-Key"))
			}
			if pause := tries[1].at.Sub(tries[0].at); pause < tc.wantPause {
				t.Errorf("retried after %s, want at least %s", pause, tc.wantPause)
			}
			if _, err := c.Status(t.Context(), in.JobID); err != nil {
				t.Errorf("the job answered does not exist: %v", err)
			}
		})
	}

	t.Run("the caller's key returns the same job", func(t *testing.T) {
		c := newClient(t, serverURL())
		opts := client.InitiateOptions{IdempotencyKey: fmt.Sprintf("test-%d", time.Now().UnixNano())}
		first, err := c.Initiate(t.Context(), mixed, opts)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Initiate(t.Context(), mixed, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !first.Created || again.Created || again.JobID != first.JobID {
			t.Errorf("first %s (created %v), again %s (created %v); want one job", first.JobID, first.Created,
				again.JobID, again.Created)
		}
	})
}

func TestStatusAsksIfChanged(t *testing.T) {
	p := newProxy(t, serverURL(), faults{})
	c := newClient(t, p.URL)
	id := startJob(t, c, 70000)
	follow(t, c, id)
	first, err := c.Status(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Status(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("the body after a 304 differs (-want +got):\n%s", diff)
	}
	asks := p.requests("/status/")
	last := asks[len(asks)-1]
	if last.header.Get("If-None-Match") != fmt.Sprintf(`"%d"`, first.Seq) || last.status != http.StatusNotModified {
		t.Errorf("asked with If-None-Match %q, answered %d; want the first answer's tag and 304",
			last.header.Get("If-None-Match"), last.status)
	}
}

func TestCancel(t *testing.T) {
	c := newClient(t, serverURL())
	id := startJob(t, c, 70000, 70007, 70014, 70021, 70028, 70035, 70042, 70049)
	job, err := c.Cancel(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != client.StatusCanceled {
		t.Errorf("cancel answered %s, want canceled", job.Status)
	}
	again, err := c.Cancel(t.Context(), id)
	if err != nil || again.Status != client.StatusCanceled {
		t.Errorf("cancelling again: %v, %v; want the canceled job (a retry that went through)", again, err)
	}

	done := startJob(t, c, 70000)
	follow(t, c, done)
	_, err = c.Cancel(t.Context(), done)
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusConflict || e.Code != "conflict" {
		t.Errorf("cancelling a completed job: %v, want a 409 conflict", err)
	}
}

func TestErrors(t *testing.T) {
	unknown := "dl_00000000000000000000000000"
	keys := newProxy(t, serverURL(), faults{keys: &keyRules{key: "right"}})
	cases := []struct {
		name string
		call func(ctx context.Context) error
		want *client.Error
	}{
		{"unknown job", func(ctx context.Context) error {
			_, err := newClient(t, serverURL()).Status(ctx, unknown)
			return err
		}, &client.Error{StatusCode: 404, Code: "not_found", Message: "no job with this id (it may have expired)"}},
		{"bad file id", func(ctx context.Context) error {
			_, err := newClient(t, serverURL()).Initiate(ctx, []int64{0}, client.InitiateOptions{})
			return err
		}, &client.Error{StatusCode: 400, Code: "invalid_request", Field: "file_ids"}},
		{"no key", func(ctx context.Context) error {
			_, err := newClient(t, keys.URL).Initiate(ctx, mixed, client.InitiateOptions{})
			return err
		}, &client.Error{StatusCode: 401, Code: "unauthorized", Message: "an API key is required"}},
		{"wrong key", func(ctx context.Context) error {
			_, err := newClient(t, keys.URL, client.WithKey("wrong")).Status(ctx, unknown)
			return err
		}, &client.Error{StatusCode: 401, Code: "unauthorized", Message: "an API key is required"}},
		{"watch of an unknown job", func(ctx context.Context) error {
			for ev := range newClient(t, serverURL()).Watch(ctx, unknown) {
				if ev.Type == client.EventError {
					return ev.Err
				}
			}
			return nil
		}, &client.Error{StatusCode: 404, Code: "not_found", Message: "no job with this id (it may have expired)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(t.Context())
			var got *client.Error
			if !errors.As(err, &got) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if tc.want.Message == "" {
				tc.want.Message = got.Message // the server's wording is its own
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got.StatusCode == 401 && !strings.Contains(err.Error(), "the API key is missing, wrong or revoked") {
				t.Errorf("a 401 says %q, not what to check", err)
			}
		})
	}

	t.Run("not a job id", func(t *testing.T) {
		p := newProxy(t, serverURL(), faults{})
		_, err := newClient(t, p.URL).Status(t.Context(), "../initiate")
		if !errors.Is(err, client.ErrInvalidJobID) || len(p.requests("/")) != 0 {
			t.Errorf("got %v after %d requests, want ErrInvalidJobID and no request", err, len(p.requests("/")))
		}
	})

	t.Run("nothing listening", func(t *testing.T) {
		dead := "http://127.0.0.1:1"
		c := newClient(t, dead, client.WithRetries(1), client.WithBackoff(time.Millisecond, time.Millisecond),
			client.WithGiveUp(time.Millisecond))
		if _, err := c.Initiate(t.Context(), mixed, client.InitiateOptions{}); !errors.Is(err, client.ErrUnreachable) {
			t.Errorf("initiate: %v, want ErrUnreachable", err)
		}
		var last client.Event
		for ev := range c.Watch(t.Context(), unknown) {
			last = ev
		}
		if last.Type != client.EventError || !errors.Is(last.Err, client.ErrUnreachable) {
			t.Errorf("watch ended with %s %v, want an error wrapping ErrUnreachable", last.Type, last.Err)
		}
	})
}

func TestKeysAndTickets(t *testing.T) {
	t.Run("a fresh ticket per live connection", func(t *testing.T) {
		p := newProxy(t, serverURL(), faults{keys: &keyRules{key: "k-secret"}, goAway: 1})
		c := newClient(t, p.URL, client.WithKey("k-secret"))
		events := follow(t, c, startJob(t, c, mixed...))
		if got := outcome(events[len(events)-1].Job); got != mixedOutcome {
			t.Errorf("ended %q, want %q", got, mixedOutcome)
		}
		live := p.requests("/ws/")
		if len(live) < 2 {
			t.Fatalf("%d live connections, want a second after the server went away", len(live))
		}
		used := map[string]bool{}
		for _, r := range live {
			if r.status != http.StatusSwitchingProtocols {
				t.Errorf("live connection %s?%s answered %d", r.path, r.query, r.status)
			}
			if used[r.query] {
				t.Errorf("ticket query %q used twice", r.query)
			}
			used[r.query] = true
		}
		for _, r := range p.requests("/") {
			if strings.Contains(r.path+r.query, "k-secret") {
				t.Errorf("the key is in a URL: %s?%s", r.path, r.query)
			}
		}
	})

	t.Run("no tickets when auth is off", func(t *testing.T) {
		p := newProxy(t, serverURL(), faults{keys: &keyRules{key: "k", authNone: true}})
		c := newClient(t, p.URL, client.WithKey("k"))
		follow(t, c, startJob(t, c, 70000))
		if tickets := p.requests("/ticket"); len(tickets) > 0 {
			t.Errorf("%d tickets asked of a server with auth off", len(tickets))
		}
		if ws := p.requests("/ws/"); len(ws) == 0 || ws[0].query != "" {
			t.Errorf("live connections %+v, want one without a ticket", ws)
		}
	})

	t.Run("no tickets from a server without keys", func(t *testing.T) {
		p := newProxy(t, serverURL(), faults{})
		c := newClient(t, p.URL, client.WithKey("k"))
		follow(t, c, startJob(t, c, 70000))
		if me := p.requests("/v1/me"); len(me) != 1 || me[0].status != http.StatusOK {
			t.Errorf("asked /v1/me %+v, want once, answered 200 (auth none)", me)
		}
		if tickets := p.requests("/ticket"); len(tickets) > 0 {
			t.Errorf("%d tickets asked of a server that needs none", len(tickets))
		}
	})

	t.Run("a real server with keys", func(t *testing.T) {
		rs := redistest.Start(t, redistest.Options{})
		_, key, err := auth.NewKeys(rs.Client()).Create(t.Context(), "client-test", auth.RoleClient)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{"REDIS_URL": rs.URL(), "LONGHAUL_AUTH": "keys",
			"LONGHAUL_STORAGE_DIR": t.TempDir()}
		for _, kv := range servetest.FastFiles() {
			k, v, _ := strings.Cut(kv, "=")
			settings[k] = v
		}
		srv := proctest.StartLonghaul(t, devbin.LonghaulSpec{Bin: longhaulBin, Mode: "serve", Settings: settings})
		p := newProxy(t, srv.URL, faults{})
		c := newClient(t, p.URL, client.WithKey(key))
		id := startJob(t, c, mixed...)
		events := follow(t, c, id)
		if got := events[len(events)-1].Job.Status; got != client.StatusCompleted {
			t.Errorf("the job ended %s, want completed", got)
		}
		if tickets := p.requests("/ticket"); len(tickets) == 0 {
			t.Error("the live connection asked for no ticket")
		}
		for _, r := range p.requests("/") {
			if strings.Contains(r.path+r.query, key) {
				t.Errorf("the key is in a URL: %s?%s", r.path, r.query)
			}
		}
		var buf bytes.Buffer
		if _, err := c.Download(t.Context(), id, 70000, &buf); err != nil || buf.Len() == 0 {
			t.Errorf("download with the key: %d bytes, %v", buf.Len(), err)
		}
		_, err = newClient(t, srv.URL).Status(t.Context(), id)
		var e *client.Error
		if !errors.As(err, &e) || e.StatusCode != 401 || !strings.Contains(e.Error(), "missing, wrong or revoked") {
			t.Errorf("without the key = %v, want a 401 that says so", err)
		}
	})
}
