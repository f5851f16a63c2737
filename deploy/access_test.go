package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/auth"
	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
)

// clientAt is an HTTP client whose connections come from the loopback address ip (Linux
// routes all of 127.0.0.0/8 to the loopback), so that one test can be several clients,
// and a proxy, at once. It trusts the test's certificate.
func clientAt(ip string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, TLSClientConfig: cert.Client}}
}

func create(t *testing.T, c *http.Client, base string, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/download/initiate", strings.NewReader(`{"file_ids":[7]}`))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLimitsHoldAcrossInstancesAndProxies: two API instances on one Redis share each
// client's creation rate. The client is who the peer is, unless the peer is a trusted
// proxy (here nginx, ending TLS as deploy/nginx.conf does): a client that sends its own
// X-Forwarded-For changes nothing, and the proxy's is honoured.
func TestLimitsHoldAcrossInstancesAndProxies(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	s := fastSettings(t).with("LONGHAUL_RATE_CREATE", "1", "LONGHAUL_RATE_CREATE_BURST", "5",
		"LONGHAUL_TRUSTED_PROXIES", "127.0.0.1")
	a, b := startAPI(t, "api A", redis.URL(), s), startAPI(t, "api B", redis.URL(), s)
	ng := startNginx(t, proxy{Upstreams: []string{a.Addr(), b.Addr()}})
	if !strings.HasPrefix(ng.url, "https://") {
		t.Fatalf("nginx serves %s, want TLS", ng.url)
	}

	direct := clientAt("127.0.0.2")
	var codes []int
	for i := range 6 {
		base := a.URL
		if i%2 == 1 {
			base = b.URL
		}
		codes = append(codes, create(t, direct, base))
	}
	refused := 0
	for _, c := range codes {
		if c == 429 {
			refused++
		}
	}
	if refused != 1 || codes[5] != 429 {
		t.Fatalf("6 creations across two instances with a burst of 5 = %v, want exactly one 429, the last", codes)
	}
	if got := create(t, direct, a.URL, "X-Forwarded-For", "198.51.100.7"); got != 429 {
		t.Errorf("a spoofed X-Forwarded-For from an untrusted peer = %d, want the same client's 429", got)
	}
	// Through the trusted proxy the client is who connected to it, not the proxy.
	if got := create(t, clientAt("127.0.0.2"), ng.url); got != 429 {
		t.Errorf("the same client through nginx = %d, want its 429", got)
	}
	if got := create(t, clientAt("127.0.0.3"), ng.url, "X-Forwarded-For", "127.0.0.2"); got != 202 {
		t.Errorf("another client through nginx = %d, want 202 (its own limit, whatever it claims)", got)
	}
}

// TestKeysThroughTheTLSProxy: with keys, a client reaches its job through nginx over TLS,
// and the live channel opens with a ticket, which nginx's access log does not keep.
func TestKeysThroughTheTLSProxy(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	_, key, err := auth.NewKeys(redis.Client()).Create(context.Background(), "alice", auth.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	s := fastSettings(t).with("LONGHAUL_AUTH", "keys", "LONGHAUL_TRUSTED_PROXIES", "127.0.0.1")
	a := startAPI(t, "api", redis.URL(), s)
	startWorker(t, "worker", redis.URL(), s)
	ng := startNginx(t, proxy{Upstreams: []string{a.Addr()}})
	if got := create(t, http.DefaultClient, ng.url); got != 401 {
		t.Errorf("no key through nginx = %d, want 401", got)
	}
	id := initiateWith(t, ng.url, key, 70000)
	ticket := ticketFor(t, ng.url, key, id)
	msgs := followLive(t, "wss"+strings.TrimPrefix(ng.url, "https")+"/ws/download/"+id+"?ticket="+ticket)
	if final := msgs[len(msgs)-1]; final.Status != "completed" && (final.Job == nil || final.Job.Status != "completed") {
		t.Errorf("the job ended %+v, want completed", final)
	}
	ng.Stop(10 * time.Second) // nginx writes a request's line when it ends; stopping it flushes them all
	accessLog, err := os.ReadFile(filepath.Join(ng.dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(accessLog), "GET /ws/download/"+id+" ") {
		t.Errorf("nginx's access log has no line for the live channel:\n%s", accessLog)
	}
	if strings.Contains(string(accessLog), ticket) || strings.Contains(string(accessLog), "ticket=") {
		t.Errorf("nginx's access log holds the ticket:\n%s", accessLog)
	}
}

// initiateWith starts a job through base with an API key.
func initiateWith(t *testing.T, base, key string, ids ...int64) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"file_ids": ids})
	req, _ := http.NewRequest("POST", base+"/v1/download/initiate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	var out struct {
		JobID string `json:"job_id"`
	}
	if code := doJSON(t, req, &out); code != http.StatusAccepted {
		t.Fatalf("initiate with a key: HTTP %d", code)
	}
	return out.JobID
}

// ticketFor asks for a live-channel ticket for job id.
func ticketFor(t *testing.T, base, key, id string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/download/"+id+"/ticket", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	var out struct {
		Ticket string `json:"ticket"`
	}
	if code := doJSON(t, req, &out); code != http.StatusCreated {
		t.Fatalf("ticket: HTTP %d", code)
	}
	return out.Ticket
}

func doJSON(t *testing.T, req *http.Request, out any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(out)
	return resp.StatusCode
}

// followLive reads a live WebSocket to its close.
func followLive(t *testing.T, url string) []livetest.Message {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.Close()
	msgs, code := livetest.Follow(t, conn)
	if code != websocket.CloseNormalClosure || len(msgs) == 0 {
		t.Fatalf("live channel closed %d after %d messages, want 1000 after the final event", code, len(msgs))
	}
	return msgs
}
