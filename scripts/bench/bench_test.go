package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the benchmark's child processes, which the benchmark
// starts by re-executing itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == cmdFanoutClient || os.Args[1] == cmdNoopWorker) {
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
	if len(rep.Initiate) != len(quickPlan.Clients) || len(rep.Status) != len(quickPlan.Clients) ||
		rep.Fanout == nil || rep.Worker == nil || len(rep.E2E) != len(quickPlan.E2EWorkers) {
		t.Fatalf("a stage is missing from the report:\n%s", rep.Table())
	}
	rates := map[string]float64{}
	for _, c := range rep.Initiate {
		rates["initiate"], rates["enqueue"] = c.Longhaul.Rate(), c.Baseline.Rate()
	}
	for _, s := range rep.Status {
		rates["status 200"], rates["status 304"], rates["hgetall"] = s.OK.Longhaul.Rate(), s.NotChanged.Longhaul.Rate(), s.OK.Baseline.Rate()
	}
	rates["fan-out updates"] = rep.Fanout.UpdateRate()
	rates["fan-out deliveries"] = float64(rep.Fanout.Delivered)
	rates["worker files"], rates["no-op tasks"] = rep.Worker.FileRate(), rep.Worker.NoopRate()
	for _, e := range rep.E2E {
		rates["end to end"] = e.JobRate()
	}
	for name, r := range rates {
		if r <= 0 {
			t.Errorf("%s: no throughput\n%s", name, rep.Table())
		}
	}
	if rep.Fanout.Conns != quickPlan.FanConns || rep.Fanout.RSSIdle <= 0 {
		t.Errorf("fan-out: %d of %d clients connected, idle RSS %d", rep.Fanout.Conns, quickPlan.FanConns, rep.Fanout.RSSIdle)
	}

	// The report and its chart are drawn from these results; in a temporary directory,
	// never in the repository.
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := rep.Write(out); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(out)
	for _, want := range []string{"## 1. Initiate", "## 3. Fan-out", "go -C scripts run ./bench -only e2e", "benchmarks-latency.png"} {
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
