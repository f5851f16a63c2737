package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/jobs"
)

// key makes an API key and returns it with its secret.
func (e *env) key(t *testing.T, name string, role auth.Role) (auth.Key, string) {
	t.Helper()
	k, secret, err := e.apiKeys.Create(context.Background(), name, role)
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

// ownedJob creates a running job of principal with one ready file (70000) and one still
// preparing (70007).
func (e *env) ownedJob(t *testing.T, principal string) string {
	t.Helper()
	ctx := context.Background()
	id, _, err := e.store.Submit(ctx, jobs.Request{FileIDs: []int64{70000, 70007}, Principal: principal})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Claim(ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.files.Write(id, 70000, "a", strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 10})
	return id
}

// written is what Redis and the storage directory hold, to tell whether a request wrote.
func (e *env) written(t *testing.T) []string {
	t.Helper()
	keys, err := e.rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	filepath.Walk(e.filesDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			keys = append(keys, "file "+path)
		}
		return nil
	})
	slices.Sort(keys)
	return keys
}

// TestEveryRouteAsEveryCaller runs every route of the contract as each kind of caller: no
// key, a made-up key, a revoked key, another client's key, the owner's key and an admin
// key. A refusal writes nothing, and another client's job is not found, exactly as a job
// that does not exist.
func TestEveryRouteAsEveryCaller(t *testing.T) {
	e := newEnv(t, api.Config{Auth: api.AuthKeys})
	owner, ownerKey := e.key(t, "alice", auth.RoleClient)
	_, otherKey := e.key(t, "bob", auth.RoleClient)
	_, adminKey := e.key(t, "ops", auth.RoleAdmin)
	revoked, revokedKey := e.key(t, "gone", auth.RoleClient)
	if err := e.apiKeys.Revoke(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	id := e.ownedJob(t, "key:"+owner.ID)

	callers := []struct{ name, key string }{
		{"no key", ""}, {"made-up key", "lh_abcdefgh_" + strings.Repeat("x", 43)}, {"revoked key", revokedKey},
		{"other client", otherKey}, {"owner", ownerKey}, {"admin", adminKey},
	}
	const json = "application/json"
	routes := []struct {
		name, method, path, contentType, body string
		want                                  [6]int // by caller, in the order above
	}{
		{"me", "GET", "/v1/me", "", "", [6]int{401, 401, 401, 200, 200, 200}},
		{"initiate", "POST", "/v1/download/initiate", json, `{"file_ids":[70000]}`, [6]int{401, 401, 401, 202, 202, 202}},
		{"status", "GET", "/v1/download/status/" + id, "", "", [6]int{401, 401, 401, 404, 200, 200}},
		{"file", "GET", "/v1/download/" + id + "/files/70000", "", "", [6]int{401, 401, 401, 404, 200, 200}},
		{"ticket", "POST", "/v1/download/" + id + "/ticket", "", "", [6]int{401, 401, 401, 404, 201, 201}},
		{"events", "GET", "/v1/download/" + id + "/events", "", "", [6]int{401, 401, 401, 404, 200, 200}},
		{"cancel an unknown job", "DELETE", "/v1/download/" + jobs.NewID(), "", "", [6]int{401, 401, 401, 404, 404, 404}},
		{"cancel", "DELETE", "/v1/download/" + id, "", "", [6]int{401, 401, 401, 404, 0, 0}},
		{"dashboard", "GET", "/monitoring/api/queues", "", "", [6]int{401, 401, 401, 403, 403, 200}},
		{"health", "GET", "/healthz", "", "", [6]int{200, 200, 200, 200, 200, 200}},
	}
	for _, r := range routes {
		for i, who := range callers {
			if r.want[i] == 0 {
				continue // cancelling the job would change what the other rows see
			}
			t.Run(r.name+" as "+who.name, func(t *testing.T) {
				before := e.written(t)
				got, body := e.send(t, r.method, r.path, r.contentType, r.body, who.key)
				if got.StatusCode != r.want[i] {
					t.Fatalf("%s %s = %d %s, want %d", r.method, r.path, got.StatusCode, body, r.want[i])
				}
				if got.StatusCode == 401 && got.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if got.StatusCode >= 400 {
					if after := e.written(t); !slices.Equal(before, after) {
						t.Errorf("the refusal wrote: keys and files before %v, after %v", before, after)
					}
					if r.name == "status" && !strings.Contains(body, `"not_found"`) && got.StatusCode == 404 {
						t.Errorf("another client's job answers %s, not the contract's not_found", body)
					}
				}
			})
		}
	}

	// WebSocket, with the key in the header (a client that can send one): another client's
	// job is not found after the handshake, as an unknown one is.
	for _, who := range callers {
		t.Run("websocket as "+who.name, func(t *testing.T) {
			header := http.Header{}
			if who.key != "" {
				header.Set("Authorization", "Bearer "+who.key)
			}
			conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL(id), header)
			switch who.name {
			case "no key", "made-up key", "revoked key":
				if err == nil || resp == nil || resp.StatusCode != 401 {
					t.Fatalf("dial = %v, %v; want 401 before the upgrade", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			m, err := livetest.Read(t, conn)
			if who.name == "other client" {
				_, err2 := livetest.Read(t, conn)
				var ce *websocket.CloseError
				if err != nil || m.Type != "error" || !errors.As(err2, &ce) || ce.Code != api.CloseNotFound {
					t.Errorf("another client's job: %+v, %v, then %v; want not_found and 4404", m, err, err2)
				}
				return
			}
			if err != nil || m.Type != "snapshot" || m.Job.ID != id {
				t.Errorf("first message = %+v, %v; want the job's snapshot", m, err)
			}
		})
	}

	for _, who := range []struct{ name, key string }{{"owner", ownerKey}, {"admin", adminKey}} {
		t.Run("cancel as "+who.name, func(t *testing.T) {
			own := e.ownedJob(t, "key:"+owner.ID)
			if resp, body := e.send(t, "DELETE", "/v1/download/"+own, "", "", who.key); resp.StatusCode != 202 {
				t.Errorf("cancel = %d %s, want 202", resp.StatusCode, body)
			}
		})
	}
}

// send makes a request with key as its Bearer key, if any. An event stream is read only as
// far as its status line.
func (e *env) send(t *testing.T, method, path, contentType, body, key string) (*http.Response, string) {
	t.Helper()
	if strings.HasSuffix(path, "/events") {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, e.srv.URL+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b []byte
		if resp.StatusCode != 200 {
			b, _ = io.ReadAll(resp.Body)
		}
		e.contract.check(t, req, "", resp, b)
		return resp, string(b)
	}
	var header []string
	if key != "" {
		header = []string{"Authorization", "Bearer " + key}
	}
	return e.do(t, method, path, contentType, body, header...)
}

func (e *env) wsURL(id string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws/download/" + id
}

// ticket asks for a live-channel ticket for job id with key.
func (e *env) ticket(t *testing.T, id, key string) string {
	t.Helper()
	resp, body := e.send(t, "POST", "/v1/download/"+id+"/ticket", "", "", key)
	var got struct {
		Ticket    string    `json:"ticket"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := jsonUnmarshal(body, &got); err != nil || resp.StatusCode != 201 || got.Ticket == "" {
		t.Fatalf("ticket = %d %s", resp.StatusCode, body)
	}
	if until := time.Until(got.ExpiresAt); until <= 0 || until > time.Minute {
		t.Errorf("ticket expires in %v, want within its short life", until)
	}
	return got.Ticket
}

func TestLiveChannelsTakeOneTicketEach(t *testing.T) {
	e := newEnvWith(t, api.Config{Auth: api.AuthKeys}, envOptions{ticketTTL: time.Second})
	owner, ownerKey := e.key(t, "alice", auth.RoleClient)
	_, otherKey := e.key(t, "bob", auth.RoleClient)
	id := e.ownedJob(t, "key:"+owner.ID)
	other := e.ownedJob(t, "key:"+owner.ID)

	refused := func(t *testing.T, url string) {
		t.Helper()
		_, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Errorf("dial %s = %v, %v; want 401 before any upgrade", url, err, resp)
		}
	}
	ticket := e.ticket(t, id, ownerKey)
	conn, _, err := websocket.DefaultDialer.Dial(e.wsURL(id)+"?ticket="+ticket, nil)
	if err != nil {
		t.Fatalf("the ticket opened nothing: %v", err)
	}
	if m, err := livetest.Read(t, conn); err != nil || m.Type != "snapshot" {
		t.Errorf("first message = %+v, %v", m, err)
	}
	conn.Close()

	t.Run("reused", func(t *testing.T) { refused(t, e.wsURL(id)+"?ticket="+ticket) })
	t.Run("for another job", func(t *testing.T) { refused(t, e.wsURL(id)+"?ticket="+e.ticket(t, other, ownerKey)) })
	t.Run("expired", func(t *testing.T) {
		late := e.ticket(t, id, ownerKey)
		time.Sleep(1200 * time.Millisecond)
		refused(t, e.wsURL(id)+"?ticket="+late)
	})
	t.Run("of a key revoked since", func(t *testing.T) {
		k, secret := e.key(t, "short-lived", auth.RoleAdmin)
		issued := e.ticket(t, id, secret)
		if err := e.apiKeys.Revoke(context.Background(), k.ID); err != nil {
			t.Fatal(err)
		}
		refused(t, e.wsURL(id)+"?ticket="+issued)
	})
	t.Run("another key asks for one", func(t *testing.T) {
		if resp, _ := e.send(t, "POST", "/v1/download/"+id+"/ticket", "", "", otherKey); resp.StatusCode != 404 {
			t.Errorf("another client's ticket request = %d, want 404", resp.StatusCode)
		}
	})
	t.Run("a key in the URL", func(t *testing.T) {
		refused(t, e.wsURL(id)+"?ticket="+ownerKey)
		refused(t, e.wsURL(id)+"?key="+ownerKey)
	})
	t.Run("server-sent events", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, c := range []struct {
			ticket string
			want   int
		}{{e.ticket(t, id, ownerKey), 200}, {"lht_made_up", 401}} {
			req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/download/"+id+"/events?ticket="+c.ticket, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("events with ticket %.10s... = %d, want %d", c.ticket, resp.StatusCode, c.want)
			}
		}
	})
}

func TestHostAndOriginAreCheckedWithKeys(t *testing.T) {
	e := newEnv(t, api.Config{Auth: api.AuthKeys, PublicOrigins: []string{"https://downloads.example.com"}})
	owner, key := e.key(t, "alice", auth.RoleClient)
	id := e.ownedJob(t, "key:"+owner.ID)
	get := func(host, path string, header ...string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		req.Host = host
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("downloads.example.com", "/v1/me", "Authorization", "Bearer "+key); got != 200 {
		t.Errorf("the public host = %d, want 200", got)
	}
	// A page on a domain rebound to this server's address names its own host.
	if got := get("rebound.example.net", "/v1/me", "Authorization", "Bearer "+key); got != http.StatusMisdirectedRequest {
		t.Errorf("another host = %d, want 421", got)
	}
	if got := get("rebound.example.net", "/", ""); got != http.StatusMisdirectedRequest {
		t.Errorf("the page on another host = %d, want 421", got)
	}
	if got := get("10.1.2.3:3000", "/healthz"); got != 200 {
		t.Errorf("a load balancer's probe by address = %d, want 200", got)
	}
	// The WebSocket's Origin is checked against the public origins, not against the Host
	// the request names, which the page chooses.
	for _, c := range []struct {
		origin string
		want   int
	}{{"https://rebound.example.net", 403}, {"https://downloads.example.com", 101}} {
		header := http.Header{"Host": {"downloads.example.com"}, "Origin": {c.origin}}
		conn, resp, _ := websocket.DefaultDialer.Dial(e.wsURL(id)+"?ticket="+e.ticketAt(t, "downloads.example.com", id, key), header)
		if resp == nil || resp.StatusCode != c.want {
			t.Errorf("Origin %s = %v, want %d", c.origin, resp, c.want)
		}
		if conn != nil {
			conn.Close()
		}
	}
}

// ticketAt asks for a ticket as a client of the server at host.
func (e *env) ticketAt(t *testing.T, host, id, key string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/download/"+id+"/ticket", nil)
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Ticket string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 201 {
		t.Fatalf("ticket at %s = %d, %v", host, resp.StatusCode, err)
	}
	return got.Ticket
}

func TestRateLimitsAnswer429WithTheirHeaders(t *testing.T) {
	e := newEnvWith(t, api.Config{}, envOptions{limits: limitsConfig{CreateRate: 1, CreateBurst: 2, NotFoundRate: 3}})
	var codes []int
	var last *http.Response
	for range 3 {
		resp, body := e.do(t, "POST", "/v1/download/initiate", "application/json", `{"file_ids":[7]}`)
		codes = append(codes, resp.StatusCode)
		last = resp
		if resp.StatusCode == 429 && !strings.Contains(body, `"rate_limited"`) {
			t.Errorf("429 body %s", body)
		}
	}
	if fmt.Sprint(codes) != "[202 202 429]" {
		t.Fatalf("three creations against a burst of 2 = %v", codes)
	}
	for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if last.Header.Get(h) == "" {
			t.Errorf("the 429 lacks %s: %v", h, last.Header)
		}
	}
	// A run of answers that find no job meets 429, which stops guessing.
	codes = nil
	for range 5 {
		resp, _ := e.do(t, "GET", "/v1/download/status/"+jobs.NewID(), "", "")
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[404 404 404 429 429]" {
		t.Errorf("five guesses against 3 a minute = %v", codes)
	}
}

func TestJobsOverTheSizeBoundAreRefusedBeforeAnythingIsWritten(t *testing.T) {
	e := newEnvWith(t, api.Config{}, envOptions{limits: limitsConfig{MaxJobBytes: 20 << 20}})
	// Ids divisible by 7 exist; with the demo's default sizes (1-8 MiB), six of them are
	// more than 20 MiB.
	resp, body := e.do(t, "POST", "/v1/download/initiate", "application/json", `{"file_ids":[7,14,21,28,35,42,49,56]}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `"field":"file_ids"`) {
		t.Errorf("an oversized job = %d %s, want 400 on file_ids", resp.StatusCode, body)
	}
	if n := e.keys(t); n != 0 {
		t.Errorf("the refusal left %d keys", n)
	}
	if resp, _ := e.do(t, "POST", "/v1/download/initiate", "application/json", `{"file_ids":[7]}`); resp.StatusCode != 202 {
		t.Errorf("a small job = %d, want 202", resp.StatusCode)
	}
}

func TestLiveConnectionCapsLeaveTheRestAnswering(t *testing.T) {
	e := newEnvWith(t, api.Config{MaxConnections: 20, MaxLive: 2}, envOptions{})
	id := e.newJob(t, 70000)
	for range 2 {
		e.dial(t, id, nil)
	}
	waitFor(t, "two watchers", func() bool { return e.api.Watchers() == 2 })
	_, resp, err := websocket.DefaultDialer.Dial(e.wsURL(id), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a third live connection = %v, %v; want 503 with Retry-After", err, resp)
	}
	if resp, _ := e.do(t, "GET", "/v1/download/"+id+"/events", "", ""); resp.StatusCode != 503 {
		t.Errorf("an event stream past the cap = %d, want 503", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/healthz", "", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz past the cap = %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "POST", "/v1/download/initiate", "application/json", `{"file_ids":[7]}`); resp.StatusCode != 202 {
		t.Errorf("initiate past the cap = %d", resp.StatusCode)
	}

	perKey := newEnvWith(t, api.Config{}, envOptions{limits: limitsConfig{MaxLive: 1}})
	job := perKey.newJob(t, 70000)
	perKey.dial(t, job, nil)
	waitFor(t, "one watcher", func() bool { return perKey.api.Watchers() == 1 })
	if _, resp, err := websocket.DefaultDialer.Dial(perKey.wsURL(job), nil); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Errorf("a second live connection of one client with a cap of 1 = %v, %v; want 429", err, resp)
	}
}

func TestWebSocketFramesOverTheReadLimitClose1009(t *testing.T) {
	e := newEnv(t, api.Config{})
	conn := e.dial(t, e.newJob(t, 70000), nil)
	if _, err := livetest.Read(t, conn); err != nil {
		t.Fatal(err)
	}
	// The header of a masked 1 MiB text frame: the server refuses it by its declared
	// length, before reading any of it.
	header := []byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4}
	if _, err := conn.UnderlyingConn().Write(header); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := conn.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != websocket.CloseMessageTooBig {
				t.Errorf("closed with %d, want 1009", ce.Code)
			}
			return
		} else if err != nil {
			t.Fatalf("read: %v, want a close 1009", err)
		}
	}
}

func TestNoKeyOrTicketInAnyLogLine(t *testing.T) {
	var logs lockedBuffer
	e := newEnvWith(t, api.Config{Auth: api.AuthKeys}, envOptions{log: &logs})
	owner, key := e.key(t, "alice", auth.RoleAdmin)
	id := e.ownedJob(t, "key:"+owner.ID)
	ticket := e.ticket(t, id, key)
	e.send(t, "GET", "/v1/download/status/"+id, "", "", key)
	e.send(t, "GET", "/v1/download/status/"+id, "", "", key+"tampered")
	e.send(t, "GET", "/v1/download/status/"+jobs.NewID(), "", "", key)
	e.do(t, "GET", "/monitoring/", "", "", "Authorization", "Basic "+basic("ops", key))
	for _, url := range []string{e.wsURL(id) + "?ticket=" + ticket, e.wsURL(id) + "?ticket=" + ticket, e.wsURL(id) + "?key=" + key} {
		if conn, _, err := websocket.DefaultDialer.Dial(url, nil); err == nil {
			conn.Close()
		}
	}
	e.do(t, "GET", "/v1/no-such-route?token="+key, "", "")
	text := logs.String()
	if !strings.Contains(text, "request") {
		t.Fatalf("the API logged no requests at debug level; the test would prove nothing:\n%s", text)
	}
	for _, secret := range []string{key, key[len(key)-20:], ticket, ticket[len(ticket)-20:], "Bearer", "Authorization", "Basic "} {
		if strings.Contains(text, secret) {
			t.Errorf("a log line holds %q:\n%s", secret, text)
		}
	}
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// lockedBuffer is a log destination that handlers on several goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSlowClientsAreCut: a client that trickles its headers (slowloris) or its body holds
// a connection only until the server's read timeouts, not for as long as it likes.
func TestSlowClientsAreCut(t *testing.T) {
	e := newEnv(t, api.Config{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond})
	trickle := func(t *testing.T, head string, drip string) time.Duration {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		for time.Since(start) < 20*time.Second {
			if _, err := io.WriteString(conn, drip); err != nil {
				return time.Since(start) // the server hung up
			}
			conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := conn.Read(make([]byte, 4096)); err != nil && !isTimeout(err) {
				return time.Since(start)
			}
		}
		t.Fatal("the server still held the connection after 20s")
		return 0
	}
	if held := trickle(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow: y\r\n"); held > 5*time.Second {
		t.Errorf("trickled headers held the connection %v", held)
	}
	if held := trickle(t, "POST /v1/download/initiate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: 100000\r\n\r\n{\"file_ids\":[", "7,"); held > 5*time.Second {
		t.Errorf("a trickled body held the connection %v", held)
	}
	if n := e.keys(t); n != 0 {
		t.Errorf("slow clients left %d keys", n)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServesTLSWhenGivenACertificate(t *testing.T) {
	cert, err := devbin.NewCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, api.Config{Auth: api.AuthKeys, TLSCert: cert.CertFile, TLSKey: cert.KeyFile})
	_, key := e.key(t, "alice", auth.RoleClient)
	base := "https" + strings.TrimPrefix(e.srv.URL, "http")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cert.Client}}
	req, _ := http.NewRequest("GET", base+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("/v1/me over TLS = %d (TLS %v)", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get(e.srv.URL + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP is answered too: a key could be sent in clear")
	}
}
