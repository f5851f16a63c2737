package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the benchmark's child processes, which the benchmark
// starts by re-executing itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == cmdFanoutClient || os.Args[1] == cmdNoopWorker || os.Args[1] == cmdHTTPLoad) {
		if err := dispatch(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString("bench child: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuickRunMeasuresEveryStage runs the tiny version of the whole benchmark, so that it
// cannot rot: every stage must finish and measure something. Timing targets are not
// checked here; a loaded test machine says nothing about them.
func TestQuickRunMeasuresEveryStage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and longhaul processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := Run(ctx, Options{Quick: true, Work: t.TempDir(), Log: &log})
	if err != nil {
		t.Fatalf("quick run: %v\nprogress:\n%s", err, log.String())
	}
	t.Log("progress:\n" + log.String())
	if len(rep.Initiate) != len(quickPlan.Clients) || len(rep.Status) != len(quickPlan.Clients) || len(rep.Fanout) == 0 ||
		rep.Scale == nil || rep.Watchers == nil || rep.Storm == nil || rep.AfterClose == nil ||
		rep.Worker == nil || len(rep.E2E) != len(quickPlan.E2EWorkers) {
		t.Fatalf("a stage is missing from the report:\n%s", rep.Table())
	}
	// The Gin peer is built by every run; the Node peer is measured where it is installed.
	peers := []string{keyGin}
	if nodeInstalled(filepath.Join("peers", "node")) {
		peers = append(peers, keyNode)
	}
	rates := map[string]float64{}
	for _, row := range rep.Initiate {
		for _, key := range append([]string{keyLonghaul, keyAsynq}, peers...) {
			res, _ := row.Get(key)
			rates["initiate "+key] = res.Rate()
		}
	}
	for _, row := range rep.Status {
		for _, key := range append([]string{keyStatus200, keyStatus304, keyHGetAll, keyHealth}, peers...) {
			res, _ := row.Get(key)
			rates["status "+key] = res.Rate()
		}
	}
	for _, f := range append(rep.Fanout, rep.Scale, rep.Watchers) {
		rates["fan-out deliveries to "+f.Server+" "+strconv.Itoa(f.Conns)] = float64(f.Delivered)
	}
	rates["storm resyncs"] = float64(rep.Storm.Resynced)
	rates["storm snapshot reads"] = float64(rep.Storm.SnapshotReads)
	rates["storm health probes"] = float64(rep.Storm.Health.N)
	rates["worker files"], rates["no-op tasks"] = rep.Worker.FileRate(), rep.Worker.NoopRate()
	for _, e := range rep.E2E {
		rates["end to end"] = e.JobRate()
	}
	for name, r := range rates {
		if r <= 0 {
			t.Errorf("%s: nothing measured\n%s", name, rep.Table())
		}
	}
	fanouts := 1 // longhaul's, and the Node peer's where it runs
	if slices.Contains(peers, keyNode) {
		fanouts = 2
	}
	if len(rep.Fanout) != fanouts {
		t.Errorf("fan-outs of %d servers, want %d", len(rep.Fanout), fanouts)
	}
	for _, f := range rep.Fanout {
		if f.Conns != quickPlan.Fan.Conns || f.RSSIdle <= 0 {
			t.Errorf("fan-out of %s: %d of %d clients connected, idle RSS %d", f.Server, f.Conns, quickPlan.Fan.Conns, f.RSSIdle)
		}
	}
	if rep.Storm.Lost != quickPlan.StormConns {
		t.Errorf("storm: the restart cut off %d clients, want all %d", rep.Storm.Lost, quickPlan.StormConns)
	}
	if n := len(rep.AfterClose.Samples); n == 0 || rep.AfterClose.RSSIdle <= 0 || rep.AfterClose.Samples[n-1].After != quickPlan.AfterCloseWait {
		t.Errorf("after close: idle RSS %d, samples %v; want the last at %v", rep.AfterClose.RSSIdle, rep.AfterClose.Samples, quickPlan.AfterCloseWait)
	}

	// The report and its chart are drawn from these results; in a temporary directory,
	// never in the repository.
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := rep.Write(out); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(out)
	for _, want := range []string{"## Beside the peers", "## 1. Initiate", "## 3. Fan-out", "## 4. Watchers",
		"go -C scripts run ./bench -only e2e", "benchmarks-latency.png", initiateLabels[keyGin]} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if info, err := os.Stat(chartPath(out)); err != nil || info.Size() < 1000 {
		t.Errorf("chart: %v", err)
	}
}

func TestHistQuantilesAreWithinTheirBucket(t *testing.T) {
	var a, b Hist
	for i := 1; i <= 1000; i++ {
		h := &a
		if i%2 == 0 {
			h = &b
		}
		h.Record(time.Duration(i) * time.Microsecond)
	}
	a.Merge(b)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0, time.Microsecond}} {
		got := a.Quantile(c.q)
		if diff := got - c.want; diff < -c.want/50 || diff > c.want/50 {
			t.Errorf("quantile %v = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
	if a.N != 1000 || a.Max != int64(time.Millisecond) {
		t.Errorf("n = %d, max = %d; want 1000 and exactly 1 ms", a.N, a.Max)
	}
}

func TestRawHTTPReadsKeepAliveResponses(t *testing.T) {
	resp := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello" +
		"HTTP/1.1 304 Not Modified\r\nEtag: \"3\"\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(resp))
	if status, n, keep, err := readResponse(br); status != 200 || n != 5 || !keep || err != nil {
		t.Errorf("first response: %d, %d bytes, keep %v, %v", status, n, keep, err)
	}
	if status, n, keep, err := readResponse(br); status != 304 || n != 0 || !keep || err != nil {
		t.Errorf("second response: %d, %d bytes, keep %v, %v", status, n, keep, err)
	}
	if _, _, _, err := readResponse(br); err == nil {
		t.Error("a chunked body was read as if it were understood")
	}
}

// TestLoadClientsSendTheSameRequests checks that both HTTP clients of the load client
// process send a load's method, path, header lines and body, and read its answer's status
// and body length.
func TestLoadClientsSendTheSameRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("If-None-Match") == `"7"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		answer := fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"), body)
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, answer)
	}))
	defer srv.Close()
	post := httpRequest{Method: http.MethodPost, Path: "/v1/download/initiate", Header: "Content-Type: application/json\r\n", Body: []byte(`{"file_ids": [7]}`)}
	get304 := httpRequest{Method: http.MethodGet, Path: "/v1/download/status/dl_1", Header: "If-None-Match: \"7\"\r\nX-Other: 1\r\n"}
	wantBody := len(`POST /v1/download/initiate application/json {"file_ids": [7]}`)
	for _, kind := range []string{clientRaw, clientNetHTTP} {
		t.Run(kind, func(t *testing.T) {
			client, err := newHTTPDoer(kind, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer client.close()
			for _, c := range []struct {
				req       httpRequest
				status, n int
			}{{post, http.StatusAccepted, wantBody}, {get304, http.StatusNotModified, 0}, {post, http.StatusAccepted, wantBody}} {
				status, n, err := client.do(t.Context(), c.req.Method, c.req.Path, c.req.Header, c.req.Body)
				if err != nil || status != c.status || n != c.n {
					t.Errorf("%s %s: %d with %d bytes (%v), want %d with %d", c.req.Method, c.req.Path, status, n, err, c.status, c.n)
				}
			}
			op := httpOp(client, loadSpec{Clients: 1, Requests: []httpRequest{post}, Want: http.StatusAccepted, MinBody: wantBody + 1})
			if err := op(t.Context(), 0); err == nil {
				t.Error("an answer shorter than MinBody passed the load's check")
			}
		})
	}
}
