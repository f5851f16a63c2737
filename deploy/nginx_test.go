package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
)

// queuedFor is how long TestLiveConnectionsOutlastProxyTimeout keeps its job queued behind
// a proxy with a 30 s read timeout: 3 minutes is six of the proxy's timeouts in a row.
// Shorten it only while working on the test itself.
var queuedFor = flag.Duration("deploy.queued", 3*time.Minute,
	"how long the keepalive test keeps its live connections idle behind nginx")

// maxPing is the longest LONGHAUL_PING_INTERVAL that longhaul accepts.
const maxPing = 25 * time.Second

// TestReferenceConfigIsValid checks deploy/nginx.conf as nginx reads it, with only its pid
// and log files moved to a temporary directory.
func TestReferenceConfigIsValid(t *testing.T) {
	t.Parallel()
	bin := requireNginx(t)
	dir := t.TempDir()
	conf, err := renderNginx(referenceConfig(t), proxy{}, dir, 0)
	if err != nil {
		t.Fatalf("deploy/nginx.conf no longer has what the tests rewrite: %v", err)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-e", filepath.Join(dir, "error.log"), "-p", dir+"/", "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t rejects deploy/nginx.conf: %v\n%s", err, out)
	}
}

// TestOriginCheckBehindProxy: nginx forwards the Host a browser used, so the WebSocket
// Origin check accepts the page's own origin through the proxy and still refuses others.
func TestOriginCheckBehindProxy(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	a := startAPI(t, "api", redis.URL(), fastSettings(t))
	ng := startNginx(t, proxy{Upstreams: []string{a.Addr()}})
	id := initiate(t, ng.url, 70000)
	url := "ws" + strings.TrimPrefix(ng.url, "http") + "/ws/download/" + id
	for _, c := range []struct {
		origin string
		want   int
	}{
		{ng.url, http.StatusSwitchingProtocols},
		{"http://evil.example", http.StatusForbidden},
		{"http://127.0.0.1", http.StatusForbidden}, // the proxy's host on another port
	} {
		conn, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {c.origin}})
		if conn != nil {
			conn.Close()
		}
		if resp == nil {
			t.Errorf("Origin %s: no response: %v", c.origin, err)
			continue
		}
		if resp.StatusCode != c.want {
			t.Errorf("Origin %s through nginx: HTTP %d, want %d", c.origin, resp.StatusCode, c.want)
		}
	}
}

// TestProxyErrorsKeepContractShape: the errors that nginx answers itself, with no API
// instance up or a body over its limit, have the contract's JSON error body.
func TestProxyErrorsKeepContractShape(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens there
	ng := startNginx(t, proxy{Upstreams: []string{dead}})
	for _, c := range []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"no API instance answers", http.MethodGet, "/v1/download/status/" + jobs.NewID(), nil,
			http.StatusServiceUnavailable, "unavailable"},
		{"no API instance for a WebSocket", http.MethodGet, "/ws/download/" + jobs.NewID(), nil,
			http.StatusServiceUnavailable, "unavailable"},
		{"body over the proxy's limit", http.MethodPost, "/v1/download/initiate", make([]byte, 256<<10),
			http.StatusRequestEntityTooLarge, "payload_too_large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, ng.url+c.path, bytes.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != c.status || err != nil || body.Error.Code != c.code || body.Error.Message == "" ||
				resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("HTTP %d %q, body %+v (%v); want %d with a JSON error %q", resp.StatusCode,
					resp.Header.Get("Content-Type"), body, err, c.status, c.code)
			}
			if c.status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		})
	}
}

// TestLiveConnectionsOutlastProxyTimeout: behind an nginx that drops upstream connections
// silent for 30 s, a WebSocket and an event stream of a job that stays queued for minutes
// stay open on longhaul's keepalive alone, then carry every event once a worker starts.
func TestLiveConnectionsOutlastProxyTimeout(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	s := fastSettings(t).with("LONGHAUL_PING_INTERVAL", maxPing.String())
	a := startAPI(t, "api", redis.URL(), s)
	// The control: a stream that sends nothing, through the same nginx, must be cut, or
	// the proxy's timeout is not in effect and the live connections prove nothing.
	silent := silentUpstream(t)
	ng := startNginx(t, proxy{Upstreams: []string{a.Addr()}, ReadTimeout: "30s",
		ServerExtra: "location = /test/silent { proxy_pass http://" + silent + "; proxy_read_timeout 30s; }"})
	id := initiate(t, ng.url, 70000, 70007)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ws, sse := &recorder{}, &recorder{}
	conn, resp, err := dialLive(ctx, websocket.DefaultDialer, ng.url, id)
	if err != nil {
		t.Fatalf("WebSocket through nginx: %v%s", err, httpStatus(resp))
	}
	wsSession := ws.begin(viaWebSocket, "")
	wsDone := goDone(func() { followWS(ctx, conn, ws, wsSession, quietLimit) })
	stream, err := openSSE(ctx, &http.Client{}, ng.url, id)
	if err != nil {
		t.Fatalf("event stream through nginx: %v", err)
	}
	sseSession := sse.begin(viaSSE, "")
	sseDone := goDone(func() { followSSE(stream.Body, sse, sseSession, quietLimit, 0) })
	cut := make(chan error, 1)
	go func() { cut <- readToEnd(ctx, ng.url+"/test/silent") }()

	hasSnapshot := func(v view) bool { return len(v.sessions) == 1 && len(v.sessions[0].msgs) > 0 }
	ws.waitUntil(t, 30*time.Second, "the WebSocket's snapshot", hasSnapshot)
	sse.waitUntil(t, 30*time.Second, "the event stream's snapshot", hasSnapshot)

	start := time.Now()
	hold := time.NewTimer(*queuedFor)
	defer hold.Stop()
	for waiting := true; waiting; {
		select {
		case <-hold.C:
			waiting = false
		case <-wsDone:
			t.Fatalf("the WebSocket ended after %v with the job still queued:\n%s", time.Since(start), ws.view())
		case <-sseDone:
			t.Fatalf("the event stream ended after %v with the job still queued:\n%s", time.Since(start), sse.view())
		case err := <-cut:
			t.Logf("nginx cut the silent stream after %v (%v)", time.Since(start).Round(time.Second), err)
			cut = nil
		}
	}
	if cut != nil {
		t.Errorf("nginx did not cut a silent stream within %v: its proxy_read_timeout is not in effect, so this test proves nothing", *queuedFor)
	}
	// Idle all along: the snapshot and keepalives only. A pinged connection sees a ping
	// every 25 s; allow one short for the start and one for the end.
	wantKeepalives := int(*queuedFor/maxPing) - 1
	for _, c := range []struct {
		name string
		rec  *recorder
	}{{"WebSocket", ws}, {"event stream", sse}} {
		v := c.rec.view()
		if n := len(v.sessions[0].msgs); n != 1 {
			t.Errorf("%s: %d messages while the job was queued, want only its snapshot:\n%s", c.name, n, v)
		}
		if k := v.sessions[0].keepalives; k < wantKeepalives {
			t.Errorf("%s: %d keepalives in %v, want at least %d", c.name, k, *queuedFor, wantKeepalives)
		}
		t.Logf("%s: open for %v through a 30s proxy timeout on %d keepalives", c.name, *queuedFor, v.sessions[0].keepalives)
	}

	startWorker(t, "worker", redis.URL(), s)
	for _, d := range []<-chan struct{}{wsDone, sseDone} {
		select {
		case <-d:
		case <-time.After(2 * time.Minute):
			t.Fatalf("the job did not finish on its live connections within 2m:\nWebSocket:\n%s\nevent stream:\n%s", ws.view(), sse.view())
		}
	}
	final := status(t, ng.url, id)
	for _, c := range []struct {
		name, end string
		rec       *recorder
	}{{"WebSocket", "close 1000", ws}, {"event stream", "event: end", sse}} {
		v := c.rec.view()
		checkEveryEvent(t, c.name, v, final)
		if end := v.sessions[0].end; !strings.HasPrefix(end, c.end) {
			t.Errorf("%s ended with %q, want %q", c.name, end, c.end)
		}
	}
	if w, e := seqs(ws.view()), seqs(sse.view()); !slices.Equal(w, e) {
		t.Errorf("the WebSocket saw seqs %v, the event stream %v", w, e)
	}
}

// checkEveryEvent asserts that a client followed a job on one connection from its queued
// snapshot (seq 0) through every event, in order, to the final status the status endpoint
// reports.
func checkEveryEvent(t *testing.T, who string, v view, final jobs.Job) {
	t.Helper()
	checkOrder(t, who, v)
	if len(v.sessions) != 1 {
		t.Fatalf("%s: %d connections, want the one it opened:\n%s", who, len(v.sessions), v)
	}
	msgs := v.sessions[0].msgs
	if first := msgs[0]; first.Type != "snapshot" || first.Seq != 0 || statusOf(first) != "queued" {
		t.Errorf("%s: first message %s seq %d status %s, want the queued snapshot at seq 0", who, first.Type, first.Seq, statusOf(first))
	}
	last := msgs[len(msgs)-1]
	if !terminal(last) || last.Seq != final.Seq || statusOf(last) != string(final.Status) {
		t.Errorf("%s: last message %s seq %d status %s; the job ended %s at seq %d", who, last.Type, last.Seq,
			statusOf(last), final.Status, final.Seq)
	}
	if n := int64(len(msgs) - 1); n != final.Seq {
		t.Errorf("%s: %d events after the snapshot, want %d", who, n, final.Seq)
	}
}

// TestFallbackWhenProxyBreaksWebSocket: behind a proxy that strips the upgrade headers the
// WebSocket handshake fails, and a client falls back to Server-Sent Events, or to polling
// where the proxy also buffers the stream, and reaches the job's final state.
func TestFallbackWhenProxyBreaksWebSocket(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	s := fastSettings(t)
	a := startAPI(t, "api", redis.URL(), s)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	type client struct {
		name  string
		proxy proxy
		want  []string        // the channels tried, after the WebSocket failed
		ready func(view) bool // the client waits for events on its last channel
		rec   *recorder
		done  <-chan struct{}
		base  string
		id    string
	}
	onSSE := func(v view) bool {
		return slices.Equal(v.vias(), []string{viaSSE}) && len(v.sessions[0].msgs) > 0
	}
	polling := func(v view) bool {
		return len(v.sessions) == 2 && v.sessions[1].via == viaPolling && len(v.sessions[1].msgs) > 0
	}
	clients := []*client{
		{name: "upgrade stripped", proxy: proxy{StripUpgrade: true}, want: []string{viaSSE}, ready: onSSE},
		{name: "upgrade stripped, events buffered", proxy: proxy{StripUpgrade: true, BufferSSE: true},
			want: []string{viaSSE, viaPolling}, ready: polling},
	}
	for _, c := range clients {
		c.proxy.Upstreams = []string{a.Addr()}
		c.base = startNginx(t, c.proxy).url
		c.id = initiate(t, c.base, 70000, 70007, 70014)
		c.rec = &recorder{}
		fc := &fallbackClient{base: c.base, rec: c.rec, sseFirst: 10 * time.Second}
		c.done = goDone(func() { fc.follow(ctx, c.id) })
	}
	// Every client waits on its last channel before there is anything to see.
	for _, c := range clients {
		c.rec.waitUntil(t, time.Minute, c.name+": the client to settle on "+c.want[len(c.want)-1], c.ready)
	}
	startWorker(t, "worker", redis.URL(), s)

	for _, c := range clients {
		select {
		case <-c.done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: the client did not finish within 2m:\n%s", c.name, c.rec.view())
		}
		v := c.rec.view()
		t.Logf("%s: the client saw:\n%s", c.name, v)
		final := status(t, c.base, c.id)
		if final.Status != jobs.StatusCompleted {
			t.Errorf("%s: job ended %s, want completed", c.name, final.Status)
		}
		if len(v.notes) == 0 || !strings.Contains(v.notes[0], "websocket failed") || !strings.Contains(v.notes[0], "HTTP 400") {
			t.Errorf("%s: want the WebSocket refused with 400 first; the client saw:\n%s", c.name, v)
		}
		if !slices.Equal(v.vias(), c.want) {
			t.Errorf("%s: the client went %v, want %v:\n%s", c.name, v.vias(), c.want, v)
		}
		checkOrder(t, c.name, v)
		last, _ := v.last()
		if !terminal(last) || last.Seq != final.Seq {
			t.Errorf("%s: the client ended on %s seq %d, the job on %s seq %d", c.name, statusOf(last), last.Seq, final.Status, final.Seq)
		}
		if slices.Equal(c.want, []string{viaSSE}) {
			checkEveryEvent(t, c.name, v, final)
		}
	}
}

// TestClientFollowsJobAcrossAPIInstances: two API and two worker processes on one Redis
// behind nginx. A client on API A sees every event, in order, of a job that worker B runs;
// when A is killed mid-job, the client reconnects through nginx to API B and ends on the
// final state with no gap.
func TestClientFollowsJobAcrossAPIInstances(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	// Files slow enough that the job is still running when API A goes; workers log at info
	// so that their logs show which one ran the job.
	s := fastSettings(t).with("LONGHAUL_FILE_TIME_MIN", "1s", "LONGHAUL_FILE_TIME_MAX", "2s",
		"LONGHAUL_FILE_CONCURRENCY", "2")
	apis := []*devbin.Longhaul{startAPI(t, "api 1", redis.URL(), s), startAPI(t, "api 2", redis.URL(), s)}
	ng := startNginx(t, proxy{Upstreams: []string{apis[0].Addr(), apis[1].Addr()},
		ServerExtra: "add_header " + upstreamHeader + " $upstream_addr always;"})
	id := initiate(t, ng.url, 70000, 70007, 70014, 70021, 70028, 70035)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rec := &recorder{}
	done := goDone(func() { reconnectingClient(ctx, ng.url, id, rec) })
	rec.waitUntil(t, 30*time.Second, "the first snapshot", func(v view) bool {
		return len(v.sessions) == 1 && len(v.sessions[0].msgs) > 0
	})
	// API A is the instance that nginx gave the client, B the other one.
	apiA, apiB := apis[0], apis[1]
	if on := rec.view().sessions[0].upstream; on == apiB.Addr() {
		apiA, apiB = apiB, apiA
	} else if on != apiA.Addr() {
		t.Fatalf("nginx put the client on %q, which is neither API (%s, %s)", on, apis[0].Addr(), apis[1].Addr())
	}

	// Worker B alone can take the job; worker A starts once B has claimed it.
	workerB := startWorker(t, "worker B", redis.URL(), s.with("LONGHAUL_LOG_LEVEL", "info"))
	rec.waitUntil(t, 30*time.Second, "the job to start on worker B", func(v view) bool {
		m, ok := v.last()
		return ok && m.Seq >= 1
	})
	workerA := startWorker(t, "worker A", redis.URL(), s.with("LONGHAUL_LOG_LEVEL", "info"))
	rec.waitUntil(t, 30*time.Second, "progress events on API A", func(v view) bool {
		m, ok := v.last()
		return ok && m.Seq >= 10
	})
	if m, _ := rec.last(); terminal(m) {
		t.Fatalf("the job finished before API A could be killed mid-job; make its files slower")
	}
	killedAt, _ := rec.last() // at least this much arrived through API A
	apiA.Kill()

	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the client did not finish within 2m of API A's death:\n%s", rec.view())
	}
	v := rec.view()
	t.Logf("API A %s was killed at seq %d; the client saw:\n%s", apiA.Addr(), killedAt.Seq, v)
	final := status(t, ng.url, id)
	checkOrder(t, "client", v)
	if len(v.sessions) < 2 {
		t.Fatalf("the client never reconnected:\n%s", v)
	}
	first := v.sessions[0]
	if first.msgs[0].Seq != 0 || len(first.msgs) < int(killedAt.Seq)+1 {
		t.Errorf("on API A the client saw %d messages up to seq %d, want every one from the queued snapshot (seq 0):\n%s",
			len(first.msgs), killedAt.Seq, v)
	}
	if first.closeCode == 1000 {
		t.Errorf("the connection to API A ended normally (%s), not by A's death", first.end)
	}
	for i, s := range v.sessions[1:] {
		if s.upstream != apiB.Addr() {
			t.Errorf("reconnect %d went to %q, want API B at %s", i+1, s.upstream, apiB.Addr())
		}
	}
	if again := v.sessions[1].msgs; len(again) == 0 || terminal(again[0]) {
		t.Errorf("the reconnect's snapshot is not mid-job: %s", seqSummary(again))
	}
	last, _ := v.last()
	if final.Status != jobs.StatusCompleted || !terminal(last) || last.Seq != final.Seq {
		t.Errorf("the client ended on %s seq %d; the job on %s seq %d, want completed", statusOf(last), last.Seq,
			final.Status, final.Seq)
	}

	// Worker B ran the job, in one attempt, and worker A never touched it.
	if !strings.Contains(workerB.Log(), id) {
		t.Errorf("worker B's log does not mention job %s", id)
	}
	if strings.Contains(workerA.Log(), id) {
		t.Errorf("worker A's log mentions job %s:\n%s", id, workerA.Tail(20))
	}
	audit, err := jobs.NewStore(redis.Client(), jobs.Options{}).Audit(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	attempts := map[string]bool{}
	for _, e := range audit {
		_, token, _ := strings.Cut(e, " ")
		attempts[token] = true
	}
	if len(audit) != 6 || len(attempts) != 1 {
		t.Errorf("audit %v: want 6 files made ready by one attempt", audit)
	}
}

// TestShutdownMovesClientsToAnotherInstance: an API instance that shuts down closes its
// WebSockets with 1001 through nginx, and their clients continue on the other instance.
func TestShutdownMovesClientsToAnotherInstance(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	s := fastSettings(t).with("LONGHAUL_FILE_TIME_MIN", "1s", "LONGHAUL_FILE_TIME_MAX", "2s",
		"LONGHAUL_FILE_CONCURRENCY", "2")
	apis := []*devbin.Longhaul{startAPI(t, "api 1", redis.URL(), s), startAPI(t, "api 2", redis.URL(), s)}
	ng := startNginx(t, proxy{Upstreams: []string{apis[0].Addr(), apis[1].Addr()},
		ServerExtra: "add_header " + upstreamHeader + " $upstream_addr always;"})
	startWorker(t, "worker", redis.URL(), s)
	id := initiate(t, ng.url, 70000, 70007, 70014, 70021)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rec := &recorder{}
	done := goDone(func() { reconnectingClient(ctx, ng.url, id, rec) })
	rec.waitUntil(t, 30*time.Second, "progress events", func(v view) bool {
		m, ok := v.last()
		return ok && m.Seq >= 5
	})
	on := rec.view().sessions[0].upstream
	leaving := apis[slices.IndexFunc(apis, func(a *devbin.Longhaul) bool { return a.Addr() == on })]
	stop(t, leaving.Process, 30*time.Second)

	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the client did not finish within 2m:\n%s", rec.view())
	}
	v := rec.view()
	t.Logf("API %s shut down; the client saw:\n%s", on, v)
	checkOrder(t, "client", v)
	if len(v.sessions) < 2 {
		t.Fatalf("the client never reconnected:\n%s", v)
	}
	if code := v.sessions[0].closeCode; code != websocket.CloseGoingAway {
		t.Errorf("the first connection ended with %d (%s), want 1001 (going away)", code, v.sessions[0].end)
	}
	if v.sessions[1].upstream == on {
		t.Errorf("the client reconnected to the instance that shut down")
	}
	final := status(t, ng.url, id)
	if last, _ := v.last(); final.Status != jobs.StatusCompleted || last.Seq != final.Seq || !terminal(last) {
		t.Errorf("the client ended on %s seq %d; the job on %s seq %d, want completed", statusOf(last), last.Seq,
			final.Status, final.Seq)
	}
}

// TestStuckClientCannotGrowServerMemory: a WebSocket and an event stream that never read
// while 10,000 events flow do not grow the API process's memory, and a healthy client of the
// same job still receives every event in order.
func TestStuckClientCannotGrowServerMemory(t *testing.T) {
	t.Parallel()
	const (
		events = 10_000
		// Each event carries 8 KiB, so the flood (80 MiB) outweighs the bound: a server
		// that queued it for a stuck client would fail the test.
		eventBulk = 8 << 10
		bound     = 64 << 10 // KiB
		token     = "proxytest-flood"
		// The healthy client keeps up: the flood waits when it is this many events behind.
		window = 16
	)
	redis := redistest.Start(t, redistest.Options{})
	a := startAPI(t, "api", redis.URL(), fastSettings(t))
	store := jobs.NewStore(redis.Client(), jobs.Options{})
	id := initiate(t, a.URL, 7)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := store.Claim(ctx, id, token); err != nil {
		t.Fatal(err)
	}

	stuckWS, resp, err := dialLive(ctx, &websocket.Dialer{NetDialContext: stuckDialer().DialContext}, a.URL, id)
	if err != nil {
		t.Fatalf("stuck WebSocket: %v%s", err, httpStatus(resp))
	}
	stuckSSE, err := openSSE(ctx, &http.Client{Transport: &http.Transport{DialContext: stuckDialer().DialContext}}, a.URL, id)
	if err != nil {
		t.Fatalf("stuck event stream: %v", err)
	}
	healthy := &recorder{slim: true}
	conn, resp, err := dialLive(ctx, websocket.DefaultDialer, a.URL, id)
	if err != nil {
		t.Fatalf("healthy WebSocket: %v%s", err, httpStatus(resp))
	}
	healthySession := healthy.begin(viaWebSocket, "")
	healthyDone := goDone(func() { followWS(ctx, conn, healthy, healthySession, quietLimit) })
	healthy.waitUntil(t, 30*time.Second, "the healthy client's snapshot", func(v view) bool {
		return len(v.sessions[0].msgs) > 0
	})
	before := memoryKiB(t, a.Process, "VmRSS")

	bulk := strings.Repeat("x", eventBulk)
	for i := 1; i <= events; i++ {
		pct := jobs.RoundPercent(99.9 * float64(i) / events)
		f := jobs.File{ID: 7, Status: jobs.StatusProcessing, Percent: pct, Attempt: 1, Error: bulk}
		if err := store.UpdateFile(ctx, id, token, f); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if seq := int64(i) + 1; i%window == 0 {
			keepUp(t, healthy, seq-window)
		}
	}
	if err := store.UpdateFile(ctx, id, token, jobs.File{ID: 7, Status: jobs.StatusReady, Percent: 100, Size: 1}); err != nil {
		t.Fatal(err)
	}
	if st, err := store.Complete(ctx, id, token); err != nil || st != jobs.StatusCompleted {
		t.Fatalf("complete: %s, %v", st, err)
	}
	select {
	case <-healthyDone:
	case <-time.After(time.Minute):
		t.Fatalf("the healthy client did not finish within 1m:\n%s", healthy.view())
	}
	after, peak := memoryKiB(t, a.Process, "VmRSS"), memoryKiB(t, a.Process, "VmHWM")
	t.Logf("api memory: VmRSS %d KiB before the flood, %d KiB after; VmHWM %d KiB", before, after, peak)
	if after-before > bound || peak-before > bound {
		t.Errorf("api memory grew from %d KiB to %d KiB (peak %d KiB) with stuck clients, want under %d KiB of growth",
			before, after, peak, bound)
	}

	v := healthy.view()
	checkOrder(t, "healthy client", v)
	if len(v.sessions) != 1 {
		t.Errorf("the healthy client needed %d connections, want 1:\n%s", len(v.sessions), v)
	}
	msgs := v.sessions[0].msgs
	if len(msgs) != events+3 || !terminal(msgs[len(msgs)-1]) || v.sessions[0].closeCode != 1000 {
		t.Errorf("the healthy client got %d messages ending %s, closed %q; want the snapshot, %d events and completed, closed 1000",
			len(msgs), seqSummary(msgs), v.sessions[0].end, events+2)
	}

	// What the stuck clients hold is in order, and ends: the server cut them off rather
	// than skip events or keep them waiting forever.
	stuck := &recorder{slim: true}
	followWS(ctx, stuckWS, stuck, stuck.begin(viaWebSocket, ""), 10*time.Second)
	followSSE(stuckSSE.Body, stuck, stuck.begin(viaSSE, ""), 10*time.Second, 0)
	sv := stuck.view()
	for i, s := range sv.sessions {
		checkOrder(t, "stuck "+s.via, view{sessions: sv.sessions[i : i+1]})
		if strings.Contains(s.end, "timeout") || strings.HasPrefix(s.end, "silent") {
			t.Errorf("stuck %s was left open, silent, after %d of %d messages: %s", s.via, len(s.msgs), events+3, s.end)
		}
		t.Logf("stuck %s: %d of %d messages %s, then %s", s.via, len(s.msgs), events+3, seqSummary(s.msgs), s.end)
	}
}

// keepUp waits, at most 30 s, until the client has received seq.
func keepUp(t *testing.T, rec *recorder, seq int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for m, _ := rec.last(); m.Seq < seq; m, _ = rec.last() {
		if time.Now().After(deadline) {
			t.Fatalf("the healthy client fell behind: at seq %d after 30s, want %d", m.Seq, seq)
		}
		time.Sleep(time.Millisecond)
	}
}

// goDone runs f in a goroutine and returns a channel closed when it returns.
func goDone(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

// initiate starts a job through base and returns its id.
func initiate(t *testing.T, base string, ids ...int64) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"file_ids": ids})
	resp, err := http.Post(base+"/v1/download/initiate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		JobID string `json:"job_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initiate: HTTP %d, %v", resp.StatusCode, err)
	}
	return out.JobID
}

// status reads a job's status body through base.
func status(t *testing.T, base, id string) jobs.Job {
	t.Helper()
	resp, err := http.Get(base + "/v1/download/status/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j jobs.Job
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status of %s: HTTP %d, %v", id, resp.StatusCode, err)
	}
	return j
}

// seqs lists the seqs of a client's messages.
func seqs(v view) []int64 {
	var out []int64
	for _, s := range v.sessions {
		for _, m := range s.msgs {
			out = append(out, m.Seq)
		}
	}
	return out
}

// silentUpstream is an HTTP server that answers with headers and then nothing, until the
// client goes away. It returns its host:port.
func silentUpstream(t *testing.T) string {
	t.Helper()
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	t.Cleanup(func() {
		close(quit)
		srv.Close()
	})
	return srv.Listener.Addr().String()
}

// readToEnd reads a response until it ends, and says how.
func readToEnd(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return fmt.Errorf("HTTP %d, %d bytes, then %v", resp.StatusCode, n, err)
}
