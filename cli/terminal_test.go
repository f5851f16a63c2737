package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// terminal is a tmux server of the test's own, with one window of 120x40.
type terminal struct {
	t      *testing.T
	tmux   string
	socket string
}

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skipf("the terminal tests run the command line in tmux, which is not installed: %v", err)
	}
	// A socket of its own, in a short path (sockets have a length limit), gone afterwards.
	dir, err := os.MkdirTemp("", "lh-tmux-")
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, tmux: tmux, socket: filepath.Join(dir, "socket")}
	t.Cleanup(func() {
		exec.Command(tmux, "-S", term.socket, "kill-server").Run()
		os.RemoveAll(dir)
	})
	return term
}

func (term *terminal) do(args ...string) string {
	term.t.Helper()
	out, err := exec.Command(term.tmux, append([]string{"-S", term.socket}, args...)...).CombinedOutput()
	if err != nil {
		term.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// start runs the command line in the window, in dir; the shell then prints its exit code.
func (term *terminal) start(dir, server string, args ...string) {
	term.t.Helper()
	script := fmt.Sprintf("cd %s && env -u LONGHAUL_API_KEY LONGHAUL_URL=%s %s %s; echo EXIT=$?; sleep 600",
		dir, server, testEnv.bin, strings.Join(args, " "))
	term.do("new-session", "-d", "-s", "cli", "-x", "120", "-y", "40", script)
}

func (term *terminal) screen() string { return term.do("capture-pane", "-p", "-t", "cli") }

// watch reads the screen every 50 ms, handing each to look, until look reports true or a
// minute passes; it returns the last screen.
func (term *terminal) watch(look func(screen string) bool) string {
	term.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s := term.screen()
		if look(s) {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the screen did not show what was expected within a minute:\n%s", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	overallRow = regexp.MustCompile(`(?m)^overall\s+\w+\s+\[[=>\-_ ]*\]\s+([0-9.]+)%`)
	exitLine   = regexp.MustCompile(`(?m)^EXIT=(\d+)$`)
)

func fileRow(id string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + id + `\s+\w+\s+\[[=>\-_ ]*\]\s+[0-9.]+%`)
}

func exitCode(screen string) (int, bool) {
	m := exitLine.FindStringSubmatch(screen)
	if m == nil {
		return 0, false
	}
	code, _ := strconv.Atoi(m[1])
	return code, true
}

func TestTerminal(t *testing.T) {
	ids := []string{"70000", "70007", "70014", "70021"}

	t.Run("a bar per file, the overall percent moving, a summary", func(t *testing.T) {
		term := newTerminal(t)
		dir := t.TempDir()
		term.start(dir, testEnv.slow, "get", strings.Join(ids, ","), "-o", "out")
		percents := map[string]bool{}
		allRows := false
		final := term.watch(func(s string) bool {
			if m := overallRow.FindStringSubmatch(s); m != nil && m[1] != "100.0" {
				percents[m[1]] = true
				rows := 0
				for _, id := range ids {
					if fileRow(id).MatchString(s) {
						rows++
					}
				}
				allRows = allRows || rows == len(ids)
			}
			_, done := exitCode(s)
			return done
		})
		if !allRows {
			t.Errorf("no screen showed a bar for each of %v beside the overall bar", ids)
		}
		if len(percents) < 2 {
			t.Errorf("the overall percent showed %v before the end, want it moving", percents)
		}
		if code, _ := exitCode(final); code != 0 {
			t.Errorf("exit %d, want 0:\n%s", code, final)
		}
		if !regexp.MustCompile(`dl_\w+ completed: 100.0% \(4/4 files: 4 ready, 0 unavailable, 0 failed\)`).MatchString(final) {
			t.Errorf("no summary on the final screen:\n%s", final)
		}
		for _, id := range ids {
			if !strings.Contains(final, "saved out/"+id+".bin") {
				t.Errorf("the summary does not say where %s was saved:\n%s", id, final)
			}
		}
	})

	t.Run("the same command piped prints JSON lines", func(t *testing.T) {
		r := run(t, testEnv.fast, "get", strings.Join(ids, ","), "-o", t.TempDir())
		ls := lines(t, r.stdout)
		if r.code != 0 || ls[0].Type != "started" || last(ls).Type != "summary" || strings.Contains(r.stdout, "[=") {
			t.Errorf("want JSON lines from started to summary, no bars\n%s", r)
		}
	})

	t.Run("Ctrl-C detaches", func(t *testing.T) {
		term := newTerminal(t)
		term.start(t.TempDir(), testEnv.slow, "get", "70000,70007,70014,70021,70028,70035,70042,70049")
		term.watch(func(s string) bool { return overallRow.MatchString(s) })
		term.do("send-keys", "-t", "cli", "C-c")
		final := term.watch(func(s string) bool { _, done := exitCode(s); return done })
		if code, _ := exitCode(final); code != 130 {
			t.Errorf("exit %d after Ctrl-C, want 130:\n%s", code, final)
		}
		m := regexp.MustCompile(`Detached: (dl_\w+) goes on on the server. Attach again with:\n\s+longhaul get --job (dl_\w+)`).
			FindStringSubmatch(final)
		if m == nil || m[1] != m[2] {
			t.Fatalf("the screen does not say how to attach again:\n%s", final)
		}
		if r := run(t, testEnv.slow, "status", m[1]); strings.Contains(r.stdout, `"status":"canceled"`) {
			t.Errorf("Ctrl-C canceled the job:\n%s", r)
		}
	})
}
