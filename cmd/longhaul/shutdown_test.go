package main

import (
	"context"
	"errors"
	"net/http"
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
	out := &addrWriter{found: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"longhaul", "serve"}, func(k string) string { return env[k] }, out, logWriter{t})
	}()
	var base string
	select {
	case base = <-out.found:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no address")
	}
	code, body := client{t, base}.post(70000)
	if code != http.StatusAccepted {
		t.Fatalf("initiate = %d %v", code, body)
	}
	conn := livetest.Dial(t, base, body["job_id"].(string), nil)
	if m, err := livetest.Read(t, conn); err != nil || m.Type != "snapshot" {
		t.Fatalf("first message %+v, %v", m, err)
	}

	cancel()
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
