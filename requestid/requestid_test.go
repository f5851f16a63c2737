package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/requestid"
)

func TestValid(t *testing.T) {
	cases := []struct {
		id   string
		want bool
	}{
		{"f3a9c1d2e4b5a6978877665544332211", true}, // nginx's $request_id
		{"3b241101-e2bb-4255-8caf-4136c566a962", true},
		{"YWJj+ZGVm/Z2hp=", true},
		{"trace:span.1_2", true},
		{"", false},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"two words", false},
		{"line\nbreak", false},
		{`quote"d`, false},
		{"ünïcode", false},
	}
	for _, c := range cases {
		if got := requestid.Valid(c.id); got != c.want {
			t.Errorf("Valid(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}

func TestNewIsValidAndFresh(t *testing.T) {
	a, b := requestid.New(), requestid.New()
	if !requestid.Valid(a) || a == b {
		t.Errorf("New gave %q then %q; want two different valid ids", a, b)
	}
}

// logLines logs through LogHandler into JSON and returns the decoded lines.
func logLines(t *testing.T, log func(*slog.Logger)) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	log(slog.New(requestid.LogHandler(slog.NewJSONHandler(&buf, nil))))
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(m, "time")
		lines = append(lines, m)
	}
	return lines
}

func TestLogHandlerAddsTheIDOfTheContext(t *testing.T) {
	ctx := requestid.With(context.Background(), "req-1")
	got := logLines(t, func(log *slog.Logger) {
		log = log.With("component", "worker")
		log.InfoContext(ctx, "job finished", "job", "dl_1")
		log.InfoContext(context.Background(), "no request")
		log.With("job", "dl_2").WarnContext(ctx, "job failed")
	})
	want := []map[string]any{
		{"level": "INFO", "msg": "job finished", "component": "worker", "job": "dl_1", "request_id": "req-1"},
		{"level": "INFO", "msg": "no request", "component": "worker"},
		{"level": "WARN", "msg": "job failed", "component": "worker", "job": "dl_2", "request_id": "req-1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

func TestWithEmptyLeavesTheContext(t *testing.T) {
	ctx := requestid.With(context.Background(), "outer")
	if got := requestid.From(requestid.With(ctx, "")); got != "outer" {
		t.Errorf("From after With(\"\") = %q, want the id from before", got)
	}
	if got := requestid.From(context.Background()); got != "" {
		t.Errorf("From of a context without an id = %q", got)
	}
}

func ExampleLogHandler() {
	log := slog.New(requestid.LogHandler(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	ctx := requestid.With(context.Background(), "f3a9c1d2")
	log.InfoContext(ctx, "job accepted", "job", "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB")
	// Output:
	// level=INFO msg="job accepted" job=dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB request_id=f3a9c1d2
}
