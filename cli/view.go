package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/longhaul-dev/longhaul/client"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// view shows a followed job: bars on a terminal, JSON lines otherwise. The follower calls
// it from one goroutine.
type view interface {
	start(id string, created bool, server string)
	channel(ch client.Channel, reason string)
	event(ev client.Event, job *client.Job)
	saving(fileID int64)
	saved(fileID int64, path string, err error)
	detached(id, reattach string)
	summary(s summary)
	// stop ends the display without a summary: an error message follows.
	stop()
}

// jsonView prints one JSON object per line: the watch's events as the API has them, and
// the command line's own (started, saved, detached, summary).
type jsonView struct{ w io.Writer }

func (v *jsonView) start(id string, created bool, server string) {
	kind := "attached"
	if created {
		kind = "started"
	}
	writeJSON(v.w, struct {
		Type   string `json:"type"`
		JobID  string `json:"job_id"`
		Server string `json:"server"`
	}{kind, id, server})
}

func (v *jsonView) channel(ch client.Channel, reason string) {
	writeJSON(v.w, struct {
		Type    string         `json:"type"`
		Channel client.Channel `json:"channel"`
		Reason  string         `json:"reason,omitempty"`
	}{"channel", ch, reason})
}

func (v *jsonView) event(ev client.Event, job *client.Job) {
	switch ev.Type {
	case client.EventSnapshot:
		writeJSON(v.w, struct {
			Type  string      `json:"type"`
			Seq   int64       `json:"seq"`
			Epoch string      `json:"epoch"`
			Job   *client.Job `json:"job"`
		}{"snapshot", ev.Seq, ev.Job.Epoch, ev.Job})
	case client.EventFile:
		writeJSON(v.w, struct {
			Type  string `json:"type"`
			Seq   int64  `json:"seq"`
			Epoch string `json:"epoch"`
			JobID string `json:"job_id"`
			client.File
		}{"file", ev.Seq, job.Epoch, job.ID, *ev.File})
	case client.EventJob:
		writeJSON(v.w, struct {
			Type     string           `json:"type"`
			Seq      int64            `json:"seq"`
			Epoch    string           `json:"epoch"`
			JobID    string           `json:"job_id"`
			Status   client.Status    `json:"status"`
			Progress client.Progress  `json:"progress"`
			Error    *client.JobError `json:"error"`
			Waiting  *client.Waiting  `json:"waiting"`
		}{"job", ev.Seq, job.Epoch, job.ID, job.Status, job.Progress, job.Error, job.Waiting})
	}
}

func (v *jsonView) saving(int64) {}

func (v *jsonView) saved(fileID int64, path string, err error) {
	line := struct {
		Type   string `json:"type"`
		FileID int64  `json:"file_id"`
		Path   string `json:"path"`
		Error  string `json:"error,omitempty"`
	}{"saved", fileID, path, ""}
	if err != nil {
		line.Type, line.Error = "save_failed", err.Error()
	}
	writeJSON(v.w, line)
}

func (v *jsonView) detached(id, reattach string) {
	writeJSON(v.w, struct {
		Type     string `json:"type"`
		JobID    string `json:"job_id"`
		Reattach string `json:"reattach"`
	}{"detached", id, reattach})
}

func (v *jsonView) summary(s summary) { writeJSON(v.w, s) }

func (v *jsonView) stop() {}

// barsView draws a bar per file and one for the whole job, redrawn in place.
//
// mpb calls the decorators from its own goroutines, which the bar methods wait on: the
// view never calls a bar method while it holds mu, or the two would wait on each other.
// Moves are worked out under mu and made after it, all under moving, which no decorator
// takes: the news of the stream and of the saves move the bars in the order it came in, so
// a late move cannot take back a bar that has completed.
type barsView struct {
	out     io.Writer
	maxRows int // the most file bars that fit on the screen beside the job's own
	p       *mpb.Progress
	overall *mpb.Bar
	moving  sync.Mutex // held from working out moves to making them

	mu     sync.Mutex // guards the fields below, read by the decorators
	rows   map[int64]*row
	job    *client.Job
	via    client.Channel // the channel news comes by
	reason string
	saves  bool // files are saved: a ready file's bar completes when it is saved
}

// row is one file's bar.
type row struct {
	bar  *mpb.Bar // set before the row is shared, never changed
	file client.File
	note string // what the command line does with it: saving, saved, or why not
	done bool   // nothing more will happen to it
}

// barScale is a bar's total: a percent with one decimal.
const barScale = 1000

// barMove is a bar's next position, applied once the lock is released.
type barMove struct {
	bar     *mpb.Bar
	current int64
}

func newBarsView(out io.Writer) *barsView {
	return &barsView{out: out, rows: map[int64]*row{}, maxRows: terminalHeight(out) - 6}
}

// terminalHeight is the number of lines of the terminal out is; 24 when it cannot tell.
func terminalHeight(out io.Writer) int {
	if f, ok := out.(*os.File); ok {
		if _, h, err := term.GetSize(int(f.Fd())); err == nil && h > 0 {
			return h
		}
	}
	return 24
}

func (v *barsView) start(id string, created bool, server string) {
	verb := "Attached to"
	if created {
		verb = "Started"
	}
	fmt.Fprintf(v.out, "%s %s on %s\n  follow it in a browser: %s/jobs/%s\n", verb, id, server,
		strings.TrimRight(server, "/"), id)
	v.p = mpb.New(mpb.WithOutput(v.out), mpb.WithRefreshRate(100*time.Millisecond), mpb.WithWidth(40))
}

func (v *barsView) channel(ch client.Channel, reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.via, v.reason = ch, reason
}

func (v *barsView) event(ev client.Event, job *client.Job) {
	v.moving.Lock()
	defer v.moving.Unlock()
	if v.overall == nil {
		v.addBars(job)
	}
	v.mu.Lock()
	v.job = job
	var moves []barMove
	if ev.File != nil {
		moves = v.update(moves, *ev.File)
	} else {
		for _, f := range job.Files {
			moves = v.update(moves, f)
		}
	}
	moves = append(moves, barMove{v.overall, min(barScale-1, int64(job.Progress.Percent*10))})
	v.mu.Unlock()
	move(moves)
}

func move(moves []barMove) {
	for _, m := range moves {
		m.bar.SetCurrent(m.current)
	}
}

// addBars makes the bars at the first snapshot: the files in the job's order, then the job.
func (v *barsView) addBars(job *client.Job) {
	width := 0
	for _, f := range job.Files {
		width = max(width, len(fmt.Sprint(f.ID)))
	}
	rows := map[int64]*row{}
	if len(job.Files) > v.maxRows {
		// More bars than lines: mpb would cut the bottom ones, the job's among them. The
		// job's bar alone, and its counts, say how far along it is.
		fmt.Fprintf(v.p, "%d files: too many for a bar each on this screen\n", len(job.Files))
		job = &client.Job{}
	}
	for _, f := range job.Files {
		r := &row{file: f}
		rows[f.ID] = r
		r.bar = v.p.AddBar(barScale,
			mpb.PrependDecorators(
				decor.Name(fmt.Sprintf("%-*d", width, f.ID), decor.WCSyncSpaceR),
				decor.Any(func(decor.Statistics) string { return v.fileStatus(r) }, decor.WCSyncSpaceR),
			),
			mpb.AppendDecorators(
				decor.Any(func(decor.Statistics) string { return v.filePercent(r) }, decor.WCSyncSpace),
				decor.Any(func(decor.Statistics) string { return " " + v.fileNote(r) }),
			),
		)
	}
	v.overall = v.p.AddBar(barScale,
		mpb.PrependDecorators(
			decor.Name("overall", decor.WCSyncSpaceR),
			decor.Any(func(decor.Statistics) string { return v.jobStatus() }, decor.WCSyncSpaceR),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string { return v.jobPercent() }, decor.WCSyncSpace),
			decor.Any(func(decor.Statistics) string { return " " + v.jobNote() }),
		),
	)
	v.mu.Lock()
	v.rows = rows
	v.mu.Unlock()
}

// update takes a file's news and adds its bar's move; a bar completes once nothing more
// will happen to its file.
func (v *barsView) update(moves []barMove, f client.File) []barMove {
	r := v.rows[f.ID]
	if r == nil {
		return moves
	}
	r.file = f
	if r.done {
		return moves // its bar has completed; a job's news repeats its files
	}
	if f.Status.Terminal() && (f.Status != client.StatusReady || !v.saves) {
		return v.finish(moves, r)
	}
	return append(moves, barMove{r.bar, min(barScale-1, int64(f.Percent*10))})
}

func (v *barsView) finish(moves []barMove, r *row) []barMove {
	if r.done {
		return moves
	}
	r.done = true
	return append(moves, barMove{r.bar, barScale})
}

func (v *barsView) saving(fileID int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.saves = true
	if r := v.rows[fileID]; r != nil {
		r.note = "saving"
	}
}

func (v *barsView) saved(fileID int64, path string, err error) {
	v.moving.Lock()
	defer v.moving.Unlock()
	v.mu.Lock()
	r := v.rows[fileID]
	if r == nil {
		v.mu.Unlock()
		return
	}
	r.note = "saved " + filepath.Base(path)
	if err != nil {
		r.note = "not saved: " + err.Error()
	}
	moves := v.finish(nil, r)
	v.mu.Unlock()
	move(moves)
}

// The decorators: each reads the view under its lock.

func (v *barsView) fileStatus(r *row) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.file.Status == client.StatusProcessing {
		return "preparing"
	}
	return string(r.file.Status)
}

func (v *barsView) filePercent(r *row) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("%5.1f%%", r.file.Percent)
}

func (v *barsView) fileNote(r *row) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.note != "" {
		return r.note
	}
	return fileNote(r.file)
}

func (v *barsView) jobStatus() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.job == nil {
		return ""
	}
	return string(v.job.Status)
}

func (v *barsView) jobPercent() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.job == nil {
		return ""
	}
	return fmt.Sprintf("%5.1f%%", v.job.Progress.Percent)
}

func (v *barsView) jobNote() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.job == nil {
		return ""
	}
	p := v.job.Progress
	note := fmt.Sprintf("%d/%d files", p.FilesDone, p.FilesTotal)
	if v.job.Waiting != nil {
		return note + " · " + waitingLine(v.job.Waiting)
	}
	if v.job.Status.Terminal() {
		return note
	}
	switch v.via {
	case client.ChannelNone:
		if v.reason != "" {
			return note + " · reconnecting (" + v.reason + ")"
		}
		return note
	case client.ChannelPolling:
		return note + " · polling"
	}
	return note + " · live (" + string(v.via) + ")"
}

// stop ends the bars where they are: a bar not complete stays on screen as it is.
func (v *barsView) stop() {
	// Ctrl-C echoes "^C" where the cursor stands, below the bars; mpb moves the cursor up
	// without going back to the first column, so the last drawing would start two columns
	// in. A carriage return before it puts the cursor back.
	v.p.Write([]byte("\r"))
	v.moving.Lock()
	defer v.moving.Unlock()
	v.mu.Lock()
	var open []*mpb.Bar
	for _, r := range v.rows {
		if !r.done {
			open = append(open, r.bar)
		}
	}
	var moves []barMove
	if v.overall != nil {
		if v.job != nil && v.job.Status.Terminal() {
			moves = append(moves, barMove{v.overall, barScale})
		} else {
			open = append(open, v.overall)
		}
	}
	v.mu.Unlock()
	move(moves)
	for _, b := range open {
		b.Abort(false)
	}
	v.p.Wait()
}

func (v *barsView) detached(id, reattach string) {
	v.stop()
	fmt.Fprintf(v.out, "\nDetached: %s goes on on the server. Attach again with:\n  %s\n", id, reattach)
}

func (v *barsView) summary(s summary) {
	v.stop()
	w := v.out
	fmt.Fprintf(w, "\n%s %s: %s\n", s.JobID, s.Status, progressLine(s.Progress))
	if s.Error != nil {
		fmt.Fprintf(w, "  error %s: %s\n", s.Error.Code, s.Error.Message)
	}
	for _, f := range s.Files {
		note := f.Error
		if f.Path != "" {
			note = fmt.Sprintf("saved %s (%d bytes)", f.Path, f.Size)
		} else if note == "" && f.Status == client.StatusReady {
			note = fmt.Sprintf("%d bytes", f.Size)
		}
		fmt.Fprintf(w, "  %-8d %-12s %s\n", f.FileID, f.Status, note)
	}
}
