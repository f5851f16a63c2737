package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/jobs"
)

// Every way a live connection's set-up can end gives its turn back: were one to keep it,
// after api.Handshakes of them no client could connect any more.
func TestEveryLiveHandshakeGivesItsTurnBack(t *testing.T) {
	e := newEnv(t, api.Config{AllowedOrigins: []string{"https://app.example.com"}})
	id := e.newJob(t, 70000)
	wsURL := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws/download/"
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	rawUpgrade := func(version string) (int, error) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/ws/download/"+id, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", version)
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	wantStatus := func(url string, want int) error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("answer %d, want %d", resp.StatusCode, want)
		}
		return nil
	}
	// Each is run from a goroutine of its own, and says what went wrong by its error.
	ends := map[string]func() error{
		"a watch to its end": func() error {
			conn, _, err := dialer.Dial(wsURL+id, nil)
			if err == nil {
				_, err = livetest.Read(t, conn)
				conn.Close()
			}
			return err
		},
		"a job that does not exist": func() error {
			conn, _, err := dialer.Dial(wsURL+jobs.NewID(), nil)
			if err == nil {
				livetest.Read(t, conn)
				conn.Close()
			}
			return err
		},
		"a foreign origin, refused by the upgrader": func() error {
			_, resp, err := dialer.Dial(wsURL+id, http.Header{"Origin": {"https://evil.example.com"}})
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				return fmt.Errorf("answer %v, %v; want 403", resp, err)
			}
			return nil
		},
		"a version the upgrader does not speak": func() error {
			if code, err := rawUpgrade("12"); err != nil || code != http.StatusBadRequest {
				return fmt.Errorf("answer %d, %v; want 400", code, err)
			}
			return nil
		},
		"no upgrade at all": func() error {
			return wantStatus(e.srv.URL+"/ws/download/"+id, http.StatusBadRequest)
		},
		"an event stream of a job that does not exist": func() error {
			return wantStatus(e.srv.URL+"/v1/download/"+jobs.NewID()+"/events", http.StatusNotFound)
		},
		"an event stream the client leaves": func() error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/download/"+id+"/events", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = bufio.NewReader(resp.Body).ReadString('\n')
			return err
		},
	}
	// Had one kind kept its turns, its request after api.Handshakes of them would wait
	// for one for ever.
	for name, end := range ends {
		done := make(chan error, 1)
		go func() {
			for range api.Handshakes + 1 {
				if err := end(); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: still waiting for a turn after 20 s, within %d set-ups of its kind", name, api.Handshakes+1)
		}
	}
}
