package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/client"
)

// syncBuffer is a bytes.Buffer that mpb's goroutines and the test may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBarsEndWhenTheJobsNewsRepeatsASavedFile: a file's bar completes once it is saved, and
// the job's last event, which lists every file again, must not move it back; the bars then
// end and the summary is written. (A late move that set a saved file's bar back below full,
// before mpb had drawn it complete, once kept the command waiting after its job completed.)
func TestBarsEndWhenTheJobsNewsRepeatsASavedFile(t *testing.T) {
	out := &syncBuffer{}
	v := newBarsView(out)
	ready := client.File{ID: 70000, Status: client.StatusReady, Percent: 100, Size: 3}
	processing := &client.Job{ID: "dl_x", Status: client.StatusProcessing,
		Files: []client.File{{ID: 70000, Status: client.StatusProcessing, Percent: 40}}}
	completed := &client.Job{ID: "dl_x", Status: client.StatusCompleted, Files: []client.File{ready},
		Progress: client.Progress{Percent: 100, FilesTotal: 1, FilesDone: 1, FilesReady: 1}}

	done := make(chan struct{})
	go func() {
		defer close(done)
		v.start("dl_x", true, "http://127.0.0.1:3000")
		v.event(client.Event{Type: client.EventSnapshot, Job: processing}, processing)
		v.saving(70000)
		v.event(client.Event{Type: client.EventFile, File: &ready}, completed)
		v.saved(70000, "out/70000.bin", nil)
		v.event(client.Event{Type: client.EventJob, Job: completed}, completed)
		v.summary(summary{JobID: "dl_x", Status: client.StatusCompleted, Progress: completed.Progress,
			Files: []summaryFile{{FileID: 70000, Status: client.StatusReady, Size: 3, Path: "out/70000.bin"}}})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a deadlock detector, not a measure of speed
		t.Fatalf("the bars did not end after the job completed; the screen so far:\n%s", out.String())
	}
	if !regexp.MustCompile(`dl_x completed: 100.0%`).MatchString(out.String()) {
		t.Errorf("no summary:\n%s", out.String())
	}
}

// TestJSONLinesCarryTheEpoch: a script that reads `--json` follows the contract's rule on
// epochs, so every line of the job's news says which epoch it belongs to, and a snapshot
// of a new epoch (the record lost writes in a failover) comes whole, even at a lower seq.
func TestJSONLinesCarryTheEpoch(t *testing.T) {
	var out bytes.Buffer
	v := &jsonView{w: &out}
	before := &client.Job{ID: "dl_x", Status: client.StatusProcessing, Seq: 5, Epoch: "A",
		Files: []client.File{{ID: 70000, Status: client.StatusProcessing, Percent: 80}}}
	after := &client.Job{ID: "dl_x", Status: client.StatusProcessing, Seq: 3, Epoch: "B",
		Files: []client.File{{ID: 70000, Status: client.StatusProcessing, Percent: 20}}}
	v.event(client.Event{Type: client.EventSnapshot, Seq: 5, Job: before}, before)
	v.event(client.Event{Type: client.EventFile, Seq: 6, File: &before.Files[0]}, before)
	v.event(client.Event{Type: client.EventJob, Seq: 7, Job: before}, before)
	v.event(client.Event{Type: client.EventSnapshot, Seq: 3, Job: after}, after)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l struct {
			Type  string `json:"type"`
			Seq   int64  `json:"seq"`
			Epoch string `json:"epoch"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, fmt.Sprintf("%s %d %s", l.Type, l.Seq, l.Epoch))
	}
	want := []string{"snapshot 5 A", "file 6 A", "job 7 A", "snapshot 3 B"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}
