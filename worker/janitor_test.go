package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/storage"
)

func TestJanitorRemovesOnlyFilesOfExpiredJobs(t *testing.T) {
	s := newSetup(t, Config{Source: quick})
	ctx := context.Background()
	live := s.newJob(t, 7)
	expired := jobs.NewID() // files stored, record gone
	for _, id := range []string{live, expired} {
		if _, err := s.files.Write(id, 7, "a", strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
	}
	j := NewJanitor(s.store, s.files, slog.New(slog.NewTextHandler(io.Discard, nil)))

	if n, err := j.Sweep(ctx, time.Now()); err != nil || n != 0 {
		t.Errorf("sweep right after writing removed %d (%v), want 0: the folders are fresh", n, err)
	}
	n, err := j.Sweep(ctx, time.Now().Add(2*janitorGrace))
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	if _, err := s.files.Size(expired, 7); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("file of the expired job: %v, want removed", err)
	}
	if _, err := s.files.Size(live, 7); err != nil {
		t.Errorf("file of the live job: %v, want kept", err)
	}
}
