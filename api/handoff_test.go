package api_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/api"
)

// A handshake that looks like an upgrade but that the upgrader refuses, after the
// connection left the HTTP server, still gets a whole HTTP answer in the contract's shape.
func TestWebSocketHandshakeRefusedAfterHandOffIsAnHTTPError(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000)
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(e.srv.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Version 12 is not one the server speaks: the upgrader refuses it, not the route.
	req := "GET /ws/download/" + id + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(e.srv.URL, "http://") +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 12\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	defer resp.Body.Close()
	var body errorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("the answer's body is not the contract's error: %v", err)
	}
	if resp.StatusCode != http.StatusBadRequest || body.Error.Code != "invalid_request" ||
		resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("answer %d %+v (X-Request-Id %q), want 400 invalid_request with the request's id",
			resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
	}
	if n := e.api.Watchers(); n != 0 {
		t.Errorf("%d watchers after a refused handshake, want none", n)
	}
}
