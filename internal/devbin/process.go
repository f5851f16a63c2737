package devbin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec says how to start a process.
type Spec struct {
	// Name names the process in errors. If empty, the base name of Args[0] is used.
	Name string
	// Args are the program and its arguments.
	Args []string
	// Dir is its working directory. If empty, this process's is used.
	Dir string
	// Env is its whole environment. If nil, it inherits this process's.
	Env []string
	// Log is the file its standard output and standard error are appended to, created if
	// missing. Required.
	Log string
	// OnLine, if not nil, is called with every line the process writes to its standard
	// output or standard error, one call at a time, once the line is in the log.
	OnLine func(line string)
	// Stdin, if not nil, is its standard input.
	Stdin io.Reader
}

// Process is a child process started by Start, with its output in a log file.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited and its output is in the log

	mu       sync.Mutex
	signaled bool // a signal asked the process to end, so its exit is expected; guarded by mu
}

// outputDelay bounds how long a process's output is read after it has exited, in case a
// process of its own still holds the pipe.
const outputDelay = 5 * time.Second

// Start starts the process that spec describes. The process dies with this one where the
// operating system allows it (Linux); elsewhere an interrupted run may leave it behind.
func Start(spec Spec) (*Process, error) {
	if len(spec.Args) == 0 || spec.Log == "" {
		return nil, errors.New("start a process: Spec needs Args and Log")
	}
	name := spec.Name
	if name == "" {
		name = filepath.Base(spec.Args[0])
	}
	logFile, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open its log: %w", name, err)
	}
	cmd := exec.Command(spec.Args[0], spec.Args[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdin = spec.Dir, spec.Env, spec.Stdin
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = outputDelay
	var lines *LineWriter
	if spec.OnLine == nil {
		cmd.Stdout, cmd.Stderr = logFile, logFile
	} else {
		// One writer for both streams: exec then reads them through a single pipe, so that
		// they interleave as on a terminal and OnLine is never called concurrently.
		lines = NewLineWriter(logFile, spec.OnLine)
		cmd.Stdout, cmd.Stderr = lines, lines
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, log: spec.Log, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		if lines != nil {
			lines.Flush()
		}
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Name is the process's name in errors.
func (p *Process) Name() string { return p.name }

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LogPath is the file the process's output goes to.
func (p *Process) LogPath() string { return p.log }

// Log is everything in the process's log so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Tail is the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Done is closed once the process has exited and its output is in the log.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// State is how the process exited, or nil while it runs.
func (p *Process) State() *os.ProcessState {
	if !p.Exited() {
		return nil
	}
	return p.cmd.ProcessState
}

// Signal sends sig to the process unless it has exited. Any signal but SIGSTOP and SIGCONT,
// which only pause and resume it, makes its exit expected (see ExitedByItself).
func (p *Process) Signal(sig syscall.Signal) error {
	if sig != syscall.SIGSTOP && sig != syscall.SIGCONT {
		p.mu.Lock()
		p.signaled = true
		p.mu.Unlock()
	}
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s (pid %d): %w", p.name, p.PID(), err)
	}
	return nil
}

// Stop asks the process to end with SIGTERM and waits for it. If it is still running after
// grace, it is killed with SIGKILL and Stop says so in its error.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s (pid %d) did not exit within %v of SIGTERM: killed it with SIGKILL", p.name, p.PID(), grace)
	}
}

// Kill ends the process at once with SIGKILL, as a crash would, and waits for it to be gone.
func (p *Process) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// ExitedByItself reports whether the process has exited without a signal of ours asking it
// to: a crash, or an exit we did not expect.
func (p *Process) ExitedByItself() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Exited() && !p.signaled
}

// ExitError says how the process ended, with the end of its log: the error to return when
// it ended before it should have. It is nil while the process runs.
func (p *Process) ExitError() error {
	if !p.Exited() {
		return nil
	}
	return fmt.Errorf("%s (pid %d) exited (%v); end of its log %s:\n%s", p.name, p.PID(), p.cmd.ProcessState, p.log, p.Tail(20))
}

// MemoryKiB reads a memory field of /proc/PID/status (Linux only), such as VmRSS or VmHWM,
// in KiB.
func (p *Process) MemoryKiB(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, fmt.Errorf("read the memory of %s: %w", p.name, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s of %s: %q: %w", field, p.name, line, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.PID())
}

// LineWriter copies what it is given to another writer and hands each complete line to a
// function: for a process's output, or the standard output of longhaul's run in a test. It
// is not safe for concurrent use.
type LineWriter struct {
	out     io.Writer
	fn      func(string)
	partial bytes.Buffer // the start of a line whose end has not come yet
}

// NewLineWriter returns a LineWriter that copies to out and calls fn with every complete
// line, without its line ending.
func NewLineWriter(out io.Writer, fn func(line string)) *LineWriter {
	return &LineWriter{out: out, fn: fn}
}

// Write copies b to the writer's output, then hands on the lines b completes.
func (w *LineWriter) Write(b []byte) (int, error) {
	if _, err := w.out.Write(b); err != nil {
		return 0, err
	}
	w.partial.Write(b)
	for {
		i := bytes.IndexByte(w.partial.Bytes(), '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(w.partial.Next(i + 1))
		w.fn(strings.TrimRight(line, "\r\n"))
	}
}

// Flush hands on a last line that ended without a newline.
func (w *LineWriter) Flush() {
	if w.partial.Len() > 0 {
		w.fn(w.partial.String())
		w.partial.Reset()
	}
}
