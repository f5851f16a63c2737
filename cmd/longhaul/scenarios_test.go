package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
)

// TestDemoScenarios runs the original demo's three scenarios through the whole program,
// followed at once by a live WebSocket client and by a polling client.
func TestDemoScenarios(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	base := startRun(t, "serve", fastEnv(t, rs.URL()))
	runScenarios(t, []string{base}, func(t *testing.T, _ string, f fileStatus) { checkDownload(t, base+f.DownloadURL, f.Size) })
	// The jobs above show in the dashboard.
	t.Run("dashboard", func(t *testing.T) {
		resp, err := http.Get(base + "/monitoring/api/queues")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"queue":"downloads"`) {
			t.Errorf("asynqmon's queue list = %d %s, want the downloads queue", resp.StatusCode, body)
		}
	})
}

// runScenarios runs the demo's three scenarios on the servers at bases, at once, each
// followed by a live WebSocket client and by a polling client, and calls download with
// every file that ends ready and its job. With several servers, each scenario is posted
// and polled on one and followed live on the next, as behind a load balancer.
func runScenarios(t *testing.T, bases []string, download func(t *testing.T, jobID string, f fileStatus)) {
	t.Helper()
	scenarios := []struct {
		name  string
		ids   []int64
		job   string
		files map[int64]string
	}{
		{"available", []int64{70000, 70007, 70014, 70021}, "completed",
			map[int64]string{70000: "ready", 70007: "ready", 70014: "ready", 70021: "ready"}},
		{"unavailable", []int64{70001, 70002, 70003, 70004}, "failed",
			map[int64]string{70001: "unavailable", 70002: "unavailable", 70003: "unavailable", 70004: "unavailable"}},
		{"mixed", []int64{70000, 70001, 70007, 70008}, "completed",
			map[int64]string{70000: "ready", 70001: "unavailable", 70007: "ready", 70008: "unavailable"}},
	}
	t.Run("scenarios", func(t *testing.T) {
		for i, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				base, liveBase := bases[i%len(bases)], bases[(i+1)%len(bases)]
				c := client{t, base}
				code, body := c.post(sc.ids...)
				if code != http.StatusAccepted {
					t.Fatalf("initiate = %d %v", code, body)
				}
				id := body["job_id"].(string)
				live := make(chan []livetest.Message)
				conn := livetest.Dial(t, liveBase, id, nil)
				go func() { msgs, _ := livetest.Follow(t, conn); live <- msgs }()

				p := &poller{client: c, id: id}
				final := p.untilDone(time.Minute)
				if final.Status != sc.job || final.Progress.Percent != 100 {
					t.Errorf("job ended %s at %v%%, want %s at 100%%", final.Status, final.Progress.Percent, sc.job)
				}
				if p.poll(); p.notChanged == 0 {
					t.Errorf("polling with If-None-Match never got a 304")
				}
				for _, f := range final.Files {
					if f.Status != sc.files[f.FileID] {
						t.Errorf("file %d is %s, want %s", f.FileID, f.Status, sc.files[f.FileID])
					}
					if f.Status == "ready" {
						download(t, id, f)
					}
				}

				msgs := <-live
				if got := livetest.FinalStatus(msgs); got != sc.job {
					t.Errorf("the WebSocket ended on %q, want %q", got, sc.job)
				}
				if last := msgs[len(msgs)-1]; last.Seq != final.Seq {
					t.Errorf("the WebSocket's last seq is %d, the status body's %d", last.Seq, final.Seq)
				}
			})
		}
	})
}

func checkDownload(t *testing.T, url string, size int64) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || int64(len(data)) != size || size == 0 {
		t.Errorf("GET %s = %d with %d bytes, want 200 with %d", url, resp.StatusCode, len(data), size)
	}
}
