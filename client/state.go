package client

import (
	"encoding/json"
	"math"
)

// jobState is what a watch knows of its job. It keeps the promises made to whoever reads
// the events within one epoch of the record: progress never goes backwards, a finished file
// or job never becomes unfinished again, and older news (a lower seq) never replaces newer.
// A snapshot of another epoch is the record after it lost writes (a failover): what the
// state knew may never have happened, so the snapshot replaces it whole.
type jobState struct {
	job    Job
	synced bool          // a snapshot from the server was applied
	index  map[int64]int // file id → position in job.Files
}

// applied says what an event did to the state.
type applied int

const (
	appliedChanged   applied = iota // the event was the next one, and changed something
	appliedUnchanged                // the next one, but nothing a reader would see changed
	appliedStale                    // the state already holds news at least this new
	appliedGap                      // events between the state and this one are missing
)

// applySnapshot takes a snapshot that is not older than the state, or one of another epoch;
// it reports whether it did.
func (s *jobState) applySnapshot(snap *Job) bool {
	if s.synced && snap.Epoch != s.job.Epoch {
		*s = jobState{}
	}
	if s.synced && snap.Seq < s.job.Seq {
		return false
	}
	files := make([]File, len(snap.Files))
	index := make(map[int64]int, len(snap.Files))
	for i, f := range snap.Files {
		if prev, ok := s.file(f.ID); ok {
			files[i] = mergeFile(prev, f)
		} else {
			files[i] = normalizeFile(f)
		}
		index[f.ID] = i
	}
	prev := s.job
	next := *snap.clone()
	next.Files = files
	next.Status = nextJobStatus(prev.Status, snap.Status, s.synced)
	next.Progress = mergeProgress(prev.Progress, snap.Progress.Percent, files)
	if next.Status.Terminal() {
		next.Waiting = nil
	}
	s.job, s.index, s.synced = next, index, true
	return true
}

// applyEvent applies a file or job event that directly follows the state's seq.
func (s *jobState) applyEvent(m *liveMessage) applied {
	switch {
	case !s.synced, m.Epoch != s.job.Epoch:
		return appliedGap // only a snapshot of its epoch can begin another history
	case m.Seq <= s.job.Seq:
		return appliedStale
	case m.Seq > s.job.Seq+1:
		return appliedGap
	}
	s.job.Seq = m.Seq
	changed := false
	if m.Type == "file" {
		changed = s.applyFileEvent(m)
	} else {
		changed = s.applyJobEvent(m)
	}
	if changed {
		return appliedChanged
	}
	return appliedUnchanged
}

func (s *jobState) applyFileEvent(m *liveMessage) bool {
	f := File{ID: m.FileID, Status: m.Status, Percent: m.Percent, Attempt: m.Attempt, Size: m.Size,
		DownloadURL: m.DownloadURL}
	json.Unmarshal(m.Error, &f.Error) // a file's error is a string; anything else is no error
	prev, known := s.file(f.ID)
	wasQueued := s.job.Status == StatusQueued
	next := normalizeFile(f)
	if known {
		next = mergeFile(prev, f)
		s.job.Files[s.index[f.ID]] = next
	} else {
		s.index[f.ID] = len(s.job.Files)
		s.job.Files = append(s.job.Files, next)
	}
	if wasQueued {
		s.job.Status = StatusProcessing
	}
	s.job.Progress = mergeProgress(s.job.Progress, 0, s.job.Files)
	return !known || prev != next || wasQueued
}

func (s *jobState) applyJobEvent(m *liveMessage) bool {
	before := s.job
	s.job.Status = nextJobStatus(s.job.Status, m.Status, true)
	if m.Progress != nil {
		s.job.Progress = mergeProgress(s.job.Progress, m.Progress.Percent, s.job.Files)
	}
	var jobErr *JobError
	if json.Unmarshal(m.Error, &jobErr) == nil && jobErr != nil {
		s.job.Error = jobErr
	}
	if m.Waiting != nil { // present: null clears it, an object sets it
		var w *Waiting
		if json.Unmarshal(m.Waiting, &w) == nil {
			s.job.Waiting = w
		}
	}
	if s.job.Status.Terminal() {
		s.job.Waiting = nil
	}
	return before.Status != s.job.Status || before.Progress != s.job.Progress ||
		!sameJobError(before.Error, s.job.Error) || !sameWaiting(before.Waiting, s.job.Waiting)
}

func (s *jobState) file(id int64) (File, bool) {
	i, ok := s.index[id]
	if !ok {
		return File{}, false
	}
	return s.job.Files[i], true
}

// terminal reports whether the state is the server's and the job has ended.
func (s *jobState) terminal() bool {
	return s.synced && s.job.Status.Terminal()
}

// mergeFile is the file's next state: a finished file stays finished and its percent never
// goes down.
func mergeFile(prev, next File) File {
	if prev.Status.Terminal() && !next.Status.Terminal() {
		return prev
	}
	merged := next
	merged.Percent = math.Max(prev.Percent, next.Percent)
	if merged.Attempt == 0 {
		merged.Attempt = prev.Attempt
	}
	if merged.Size == 0 {
		merged.Size = prev.Size
	}
	if merged.DownloadURL == "" {
		merged.DownloadURL = prev.DownloadURL
	}
	if merged.Error == "" && next.Status.Terminal() {
		merged.Error = prev.Error
	}
	return normalizeFile(merged)
}

// normalizeFile keeps a percent within 0-100, and at 100 for a finished file.
func normalizeFile(f File) File {
	if math.IsNaN(f.Percent) {
		f.Percent = 0
	}
	f.Percent = math.Min(100, math.Max(0, f.Percent))
	if f.Status.Terminal() {
		f.Percent = 100
	}
	return f
}

// statusRank orders job statuses by how far along they are.
func statusRank(s Status) int {
	switch s {
	case StatusQueued:
		return 0
	case StatusProcessing:
		return 1
	}
	return 2
}

// nextJobStatus never moves a job back, and never out of a terminal status once the
// state is the server's.
func nextJobStatus(cur, next Status, synced bool) Status {
	if synced && cur.Terminal() {
		return cur
	}
	if !synced || statusRank(next) >= statusRank(cur) {
		return next
	}
	return cur
}

// mergeProgress sums up files, with a percent no lower than before nor than the server's.
func mergeProgress(prev Progress, server float64, files []File) Progress {
	p := Progress{FilesTotal: len(files)}
	sum := 0.0
	for _, f := range files {
		sum += f.Percent
		if f.Status.Terminal() {
			p.FilesDone++
		}
		switch f.Status {
		case StatusReady:
			p.FilesReady++
		case StatusUnavailable:
			p.FilesUnavailable++
		case StatusFailed:
			p.FilesFailed++
		}
	}
	if len(files) > 0 {
		p.Percent = math.Round(sum/float64(len(files))*10) / 10
	}
	p.Percent = math.Min(100, math.Max(p.Percent, math.Max(prev.Percent, server)))
	return p
}

func sameJobError(a, b *JobError) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func sameWaiting(a, b *Waiting) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Reason == b.Reason && a.Since.Equal(b.Since) &&
		a.ResumeBy.Equal(b.ResumeBy))
}
