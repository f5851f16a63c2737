package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/internal/livetest"
)

// TestShutdownClosesLiveClientsWith1001 stops a serving process: its WebSocket clients are
// told to go elsewhere (1001) and run returns cleanly, with the embedded Redis.
func TestShutdownClosesLiveClientsWith1001(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	env := fastEnv(t, "", "LONGHAUL_FILE_TIME_MIN", "30s", "LONGHAUL_FILE_TIME_MAX", "30s")
	out, found := listenWriter()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"longhaul", "serve"}, func(k string) string { return env[k] }, out, logWriter{t})
	}()
	var base string
	select {
	case base = <-found:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no address")
	}
	code, body := client{t, base}.post(70000)
	if code != http.StatusAccepted {
		t.Fatalf("initiate = %d %v", code, body)
	}
	id := body["job_id"].(string)
	conn := livetest.Dial(t, base, id, nil)
	if m, err := livetest.Read(t, conn); err != nil || m.Type != "snapshot" {
		t.Fatalf("first message %+v, %v", m, err)
	}
	stream, err := http.Get(base + "/v1/download/" + id + "/events")
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("SSE: %v %v", stream, err)
	}
	defer stream.Body.Close()
	sse := bufio.NewReader(stream.Body)
	if line, err := sse.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("SSE first line %q, %v", line, err)
	}

	cancel()
	// The stream ends without an "end" event, so the client reconnects elsewhere.
	rest, _ := io.ReadAll(sse)
	if strings.Contains(string(rest), "event: end") {
		t.Errorf("SSE stream said the job ended at shutdown: %q", rest)
	}
	var closeErr *websocket.CloseError
	for {
		_, err := livetest.Read(t, conn)
		if err != nil {
			if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseGoingAway {
				t.Errorf("connection ended with %v, want close 1001", err)
			}
			break
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of the signal")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still accepting requests after shutdown")
	}
}
