package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blockingSyncs returns dirSyncs whose syncs are counted and whose first sync waits until
// release is closed, so a test can link files while one sync runs.
func blockingSyncs(firstErr error) (s *dirSyncs, calls *atomic.Int32, started, release chan struct{}) {
	calls = new(atomic.Int32)
	started, release = make(chan struct{}), make(chan struct{})
	s = &dirSyncs{sync: func(string) error {
		if calls.Add(1) == 1 {
			close(started)
			<-release
			return firstErr
		}
		return nil
	}}
	return s, calls, started, release
}

// waitLinked waits until n links of dir are counted.
func waitLinked(t *testing.T, s *dirSyncs, dir string, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		d := s.dirs[dir]
		s.mu.Unlock()
		if d != nil && d.linked.Load() == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d links never counted", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// linkDuring starts one caller whose sync blocks, then n more that link while it runs, and
// returns every caller's result once the blocked sync is released.
func linkDuring(t *testing.T, s *dirSyncs, started, release chan struct{}, n int) (first error, rest []error) {
	t.Helper()
	const dir = "job"
	firstDone := make(chan error, 1)
	go func() { firstDone <- s.after(dir) }()
	<-started
	var wg sync.WaitGroup
	rest = make([]error, n)
	for i := range n {
		wg.Go(func() { rest[i] = s.after(dir) })
	}
	waitLinked(t, s, dir, int64(n+1))
	close(release)
	wg.Wait()
	return <-firstDone, rest
}

func TestFilesLinkedDuringASyncShareTheNextOne(t *testing.T) {
	s, calls, started, release := blockingSyncs(nil)
	first, rest := linkDuring(t, s, started, release, 5)
	if first != nil {
		t.Fatalf("first sync: %v", first)
	}
	for i, err := range rest {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	// One sync for the first link, and one after it for the five linked while it ran: the
	// first could not cover them, it began before they were linked.
	if got := calls.Load(); got != 2 {
		t.Errorf("%d directory syncs for 6 links, want 2", got)
	}
	if len(s.dirs) != 0 {
		t.Errorf("%d directories still tracked after every caller left", len(s.dirs))
	}
}

func TestAFailedSyncCoversNobody(t *testing.T) {
	failure := errors.New("disk gone")
	s, calls, started, release := blockingSyncs(failure)
	first, rest := linkDuring(t, s, started, release, 3)
	if !errors.Is(first, failure) {
		t.Fatalf("first caller got %v, want its sync's failure", first)
	}
	for i, err := range rest {
		if err != nil {
			t.Errorf("caller %d: %v; its own sync succeeded", i, err)
		}
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d directory syncs, want the failed one and one more for the three waiting", got)
	}
}

func TestALinkAfterASyncIsNotCoveredByIt(t *testing.T) {
	var calls atomic.Int32
	s := &dirSyncs{sync: func(string) error { calls.Add(1); return nil }}
	for range 3 {
		if err := s.after("job"); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("%d syncs for 3 links made one after another, want one each", got)
	}
}

// BenchmarkDirectorySync prepares files four at a time into one job directory, as a worker
// does, and makes each link durable either with a directory sync of its own or with the
// group commit Write uses. Run: go test -run '^$' -bench DirectorySync ./storage/
func BenchmarkDirectorySync(b *testing.B) {
	for _, mode := range []struct {
		name string
		sync func(s *dirSyncs, dir string) error
	}{
		{"a sync per link", func(s *dirSyncs, dir string) error { return s.sync(dir) }},
		{"grouped", (*dirSyncs).after},
	} {
		b.Run(mode.name, func(b *testing.B) {
			dir := b.TempDir()
			var syncs atomic.Int64
			s := &dirSyncs{sync: func(dir string) error { syncs.Add(1); return syncDir(dir) }}
			var next atomic.Int64
			b.SetParallelism(2) // 2 × GOMAXPROCS writers; a worker prepares 4 files of a job at once
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := filepath.Join(dir, strconv.FormatInt(next.Add(1), 10))
					if _, err := writeSynced(name+".tmp", strings.NewReader("content")); err != nil {
						b.Error(err)
						return
					}
					if err := os.Link(name+".tmp", name); err != nil {
						b.Error(err)
						return
					}
					if err := mode.sync(s, dir); err != nil {
						b.Error(err)
						return
					}
					os.Remove(name + ".tmp")
				}
			})
			b.ReportMetric(float64(syncs.Load())/float64(b.N), "dirsyncs/file")
		})
	}
}
