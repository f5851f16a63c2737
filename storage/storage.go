// Package storage keeps the files that workers produce and the API serves, in one of two
// places that every api and worker process reaches:
//
//   - Dir, a directory every process sees (a local disk for `longhaul serve`, a shared
//     volume otherwise). A file is written under a name of its own attempt, synced, then
//     linked to its final name, which never exists half-written and is never replaced once
//     there: a link, unlike a rename, fails when the name exists. The directory's sync that
//     makes a link durable is shared by the files linked while another sync of it ran.
//   - Bucket, a bucket of an S3-compatible object store (AWS S3, MinIO, Ceph, R2 and the
//     like), so that processes need share no disk and downloads may bypass the API. See
//     Bucket for how it keeps the same promises.
//
// Both promise the same three things, which the worker and the janitor build on: a stored
// file is complete (nobody ever sees part of one), the first file stored under a name stays
// the one served (a later attempt's write finds it and takes it as it is), and the files of a
// job can be listed and removed as a whole.
package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DirDefault is where files are stored unless configured otherwise.
const DirDefault = "./data/files"

// ErrNotFound: no such file is stored.
var ErrNotFound = errors.New("file not stored")

// Store is where produced files live: Dir or Bucket. Its consumers each name the few
// methods they use (the worker writes and sizes, the API opens, the janitor lists and
// removes); cmd/longhaul picks the one the settings ask for.
type Store interface {
	// Write stores a file's content for the attempt with the given token and returns its
	// size. When the file is already stored (an earlier attempt stored it and died before it
	// could say so), the stored file is kept and its size returned: content derives from the
	// file id, so both are the same bytes.
	Write(jobID string, fileID int64, token string, content io.Reader) (int64, error)
	// Size returns the size of a stored file, or ErrNotFound.
	Size(jobID string, fileID int64) (int64, error)
	// Open opens a stored file for reading, or returns ErrNotFound.
	Open(jobID string, fileID int64) (*Object, error)
	// Jobs lists the jobs that have anything stored, each with the last time that changed.
	Jobs() (map[string]time.Time, error)
	// RemoveJob deletes everything stored for a job.
	RemoveJob(jobID string) error
}

var (
	_ Store = (*Dir)(nil)
	_ Store = (*Bucket)(nil)
)

// Dir stores files under one directory, one folder per job. Job ids and file ids are
// validated by the callers, so they never leave the directory.
type Dir struct {
	root  string
	syncs dirSyncs
}

// NewDir returns the storage at root, creating it if needed.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	return &Dir{root: root, syncs: dirSyncs{sync: syncDir}}, nil
}

func (d *Dir) path(jobID string, fileID int64) string {
	return filepath.Join(d.root, jobID, strconv.FormatInt(fileID, 10))
}

// Write stores the content of a file for the attempt with the given token. When a file of
// that name is already stored (an earlier attempt stored it and died before it could say
// so), that file is kept and its size returned: content is derived from the file id, so
// both are the same bytes.
func (d *Dir) Write(jobID string, fileID int64, token string, content io.Reader) (int64, error) {
	final := d.path(jobID, fileID)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return 0, fmt.Errorf("create job directory: %w", err)
	}
	tmp := fmt.Sprintf("%s.%s.tmp", final, token)
	size, err := writeSynced(tmp, content)
	defer os.Remove(tmp)
	if err != nil {
		return 0, err
	}
	// A link, unlike a rename, fails when the final name exists: the file first stored
	// stays the one that is served.
	if err := os.Link(tmp, final); errors.Is(err, fs.ErrExist) {
		return d.Size(jobID, fileID)
	} else if err != nil {
		return 0, fmt.Errorf("publish file %d: %w", fileID, err)
	}
	return size, d.syncs.after(filepath.Dir(final))
}

func writeSynced(name string, content io.Reader) (int64, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create temporary file: %w", err)
	}
	size, err := io.Copy(f, content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write temporary file: %w", err)
	}
	return size, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync job directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync job directory: %w", err)
	}
	return nil
}

// dirSyncs makes links durable with as few directory syncs as it can: a group commit. The
// files of a job are prepared several at a time, and a directory's fsync costs as much for
// many new names as for one, so a sync that starts after a file was linked serves it, and
// the files linked while one sync runs all wait for the next instead of queueing one each.
type dirSyncs struct {
	sync func(dir string) error

	mu   sync.Mutex
	dirs map[string]*dirSync
}

// dirSync is one directory's state, kept while anyone waits on it.
type dirSync struct {
	users  int          // callers between their link and its sync; under dirSyncs.mu
	linked atomic.Int64 // links counted so far, each counted once it is made
	turn   sync.Mutex   // one sync of the directory at a time
	synced int64        // links known durable; under turn
}

// after returns once a directory sync that began after the caller's link has succeeded, or
// with the error of the one it ran itself. A failed sync proves nothing for the links it
// was to cover, so each of their callers then tries its own.
func (s *dirSyncs) after(dir string) error {
	d := s.enter(dir)
	defer s.leave(dir, d)
	mine := d.linked.Add(1)
	d.turn.Lock()
	defer d.turn.Unlock()
	if d.synced >= mine {
		return nil
	}
	// Every link counted by now was made before the sync below starts, so it covers them.
	covers := d.linked.Load()
	if err := s.sync(dir); err != nil {
		return err
	}
	d.synced = covers
	return nil
}

func (s *dirSyncs) enter(dir string) *dirSync {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirs == nil {
		s.dirs = make(map[string]*dirSync)
	}
	d := s.dirs[dir]
	if d == nil {
		d = &dirSync{}
		s.dirs[dir] = d
	}
	d.users++
	return d
}

// leave forgets a directory once nobody waits on it, so a long-running worker keeps no
// state per job it once wrote.
func (s *dirSyncs) leave(dir string, d *dirSync) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.users--; d.users == 0 {
		delete(s.dirs, dir)
	}
}

// Size returns the size of a stored file, or ErrNotFound.
func (d *Dir) Size(jobID string, fileID int64) (int64, error) {
	info, err := os.Stat(d.path(jobID, fileID))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNotFound
	} else if err != nil {
		return 0, fmt.Errorf("stat file %d: %w", fileID, err)
	}
	return info.Size(), nil
}

// Object is a stored file opened for reading, with its size. It reads and seeks as
// http.ServeContent needs, whatever store it comes from.
type Object struct {
	io.ReadSeekCloser
	Size int64
}

// Open opens a stored file for reading, or returns ErrNotFound.
func (d *Dir) Open(jobID string, fileID int64) (*Object, error) {
	f, err := os.Open(d.path(jobID, fileID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("open file %d: %w", fileID, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat file %d: %w", fileID, err)
	}
	return &Object{ReadSeekCloser: f, Size: info.Size()}, nil
}

// RemoveJob deletes every file of a job.
func (d *Dir) RemoveJob(jobID string) error {
	if err := os.RemoveAll(filepath.Join(d.root, jobID)); err != nil {
		return fmt.Errorf("remove files of job %s: %w", jobID, err)
	}
	return nil
}

// Jobs lists the jobs that have files stored, with the time their folder last changed.
func (d *Dir) Jobs() (map[string]time.Time, error) {
	entries, err := os.ReadDir(d.root)
	if err != nil {
		return nil, fmt.Errorf("list storage directory: %w", err)
	}
	out := make(map[string]time.Time, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if info, err := e.Info(); err == nil {
			out[e.Name()] = info.ModTime()
		}
	}
	return out, nil
}
