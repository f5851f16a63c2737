// Package cli is longhaul's command line for people and scripts: get, status, watch and
// cancel a download job, over the client package. On a terminal it draws live progress
// bars; otherwise, or with --json, it prints one JSON object per line. Every command ends
// with one of the exit codes below.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/longhaul-dev/longhaul/client"
	"golang.org/x/term"
)

// Exit codes, the same for every command.
const (
	// ExitOK: every file of the job is ready (and, for get, saved); for status, also a job
	// still running; for cancel, the job is canceled.
	ExitOK = 0
	// ExitIncomplete: the job completed, but some files are unavailable or failed, or get
	// could not save one.
	ExitIncomplete = 1
	// ExitUsage: bad arguments or flags, or a request the server refused as invalid.
	ExitUsage = 2
	// ExitJobFailed: the job failed or was canceled.
	ExitJobFailed = 3
	// ExitUnreachable: the server could not be reached, or stayed unavailable.
	ExitUnreachable = 4
	// ExitRefused: the server refused: an unknown or expired job, a missing, wrong or
	// revoked key, or a job that has already finished (cancel).
	ExitRefused = 5
	// ExitDetached: interrupted (Ctrl-C); get and watch detach and the job goes on.
	ExitDetached = 130
)

// exitCodes is the table every command's help shows.
const exitCodes = `Exit codes:
  0    every file ready (get: and saved); status: also a job still running; cancel: canceled
  1    the job completed, but some files are unavailable or failed (get: or not saved)
  2    usage error: bad arguments or flags, or a request the server refused as invalid
  3    the job failed or was canceled
  4    the server could not be reached, or stayed unavailable
  5    the server refused: unknown or expired job, missing/wrong/revoked key, job already finished
  130  interrupted (Ctrl-C): get and watch detach, the job goes on
`

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, inv *invocation, args []string) int
}

func commands() []command {
	return []command{
		{"get", "start a job (or attach to one) with live progress, and save its files", runGet},
		{"status", "print a job's status", runStatus},
		{"watch", "follow a job's live progress to its end", runWatch},
		{"cancel", "cancel a queued or running job", runCancel},
		{"version", "print the version and the commit it was built from", runVersion},
	}
}

// Handles reports whether name is a command of the command line.
func Handles(name string) bool {
	for _, c := range commands() {
		if c.name == name {
			return true
		}
	}
	return false
}

// Usage lists the commands, a line each, and the exit codes: the client half of
// `longhaul --help`.
func Usage() string {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  longhaul %-8s %s\n", c.name, c.summary)
	}
	b.WriteString("\n`longhaul COMMAND --help` says more. Server and key: --server / LONGHAUL_URL\n" +
		"(default " + defaultServer + "), --key / LONGHAUL_API_KEY.\n\n")
	b.WriteString(exitCodes)
	return b.String()
}

const defaultServer = "http://localhost:3000"

// Run runs the command line: args[0] is the command, the rest its arguments. It returns
// the exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	inv := &invocation{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage())
		return ExitUsage
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, inv, args[1:])
		}
	}
	fmt.Fprintf(stderr, "longhaul: unknown command %q\n\n%s", args[0], Usage())
	return ExitUsage
}

// invocation is one run of a command: its environment and its settings.
type invocation struct {
	getenv         func(string) string
	stdout, stderr io.Writer

	server    string
	key       string
	jsonAsked bool // --json was given
	json      bool // print JSON: asked for, or stdout is not a terminal
	command   string
}

// flags are a command's flag set with the settings every command shares.
func (inv *invocation) flags(name string) *flag.FlagSet {
	inv.command = name
	fs := flag.NewFlagSet("longhaul "+name, flag.ContinueOnError)
	fs.SetOutput(inv.stderr)
	fs.Usage = func() {}
	fs.StringVar(&inv.server, "server", "", "the longhaul server (default LONGHAUL_URL, or "+defaultServer+")")
	fs.StringVar(&inv.key, "key", "", "API key, sent as a Bearer token (default LONGHAUL_API_KEY)")
	fs.BoolVar(&inv.jsonAsked, "json", false, "print one JSON object per line (the default when stdout is not a terminal)")
	return fs
}

// parse reads flags wherever they stand among the arguments, as people type them
// (longhaul get 70000 -o out), and returns the other arguments. A help flag prints help
// and gives ExitOK; a bad flag gives ExitUsage; -1 means go on.
func (inv *invocation) parse(fs *flag.FlagSet, args []string, help string) ([]string, int) {
	var rest []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(inv.stdout, help)
			fmt.Fprintln(inv.stdout, "\nFlags:")
			fs.SetOutput(inv.stdout)
			fs.PrintDefaults()
			fmt.Fprint(inv.stdout, "\n"+exitCodes)
			return nil, ExitOK
		}
		if err != nil {
			fmt.Fprintf(inv.stderr, "run `longhaul %s --help` for its usage\n", inv.command)
			return nil, ExitUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		rest, args = append(rest, args[0]), args[1:]
	}
	if inv.server == "" {
		inv.server = inv.getenv("LONGHAUL_URL")
	}
	if inv.server == "" {
		inv.server = defaultServer
	}
	if inv.key == "" {
		inv.key = inv.getenv("LONGHAUL_API_KEY")
	}
	inv.json = inv.jsonAsked || !isTerminal(inv.stdout)
	return rest, -1
}

// usageError says what is wrong with the arguments and gives ExitUsage.
func (inv *invocation) usageError(format string, args ...any) int {
	fmt.Fprintf(inv.stderr, "longhaul %s: %s\nrun `longhaul %s --help` for its usage\n", inv.command,
		fmt.Sprintf(format, args...), inv.command)
	return ExitUsage
}

// client is the API client for this invocation's server and key.
func (inv *invocation) client() (*client.Client, error) {
	return client.New(inv.server, client.WithKey(inv.key), client.WithUserAgent("longhaul-cli/"+buildVersion().version))
}

// fail reports err (on stderr, and as a JSON line in JSON mode) and returns its exit code.
func (inv *invocation) fail(err error) int {
	code := exitCodeOf(err)
	msg := err.Error()
	var e *client.Error
	if errors.As(err, &e) && e.StatusCode == http.StatusUnauthorized {
		msg += "; pass it with --key or LONGHAUL_API_KEY"
	}
	if errors.Is(err, client.ErrUnreachable) {
		msg += fmt.Sprintf("\nis longhaul running at %s? (--server or LONGHAUL_URL)", inv.server)
	}
	if code == ExitUsage {
		msg += fmt.Sprintf("\nrun `longhaul %s --help` for its usage", inv.command)
	}
	fmt.Fprintf(inv.stderr, "longhaul %s: %s\n", inv.command, msg)
	if inv.json {
		out := errorLine{Type: "error", ExitCode: code}
		out.Error.Message = err.Error()
		if e != nil {
			out.Error.Code, out.Error.Field, out.Error.Status = e.Code, e.Field, e.StatusCode
		}
		writeJSON(inv.stdout, out)
	}
	return code
}

// errorLine is the JSON line of a command that failed.
type errorLine struct {
	Type  string `json:"type"`
	Error struct {
		Code    string `json:"code,omitempty"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
		Status  int    `json:"status,omitempty"`
	} `json:"error"`
	ExitCode int `json:"exit_code"`
}

// exitCodeOf is the exit code of a command that failed with err.
func exitCodeOf(err error) int {
	var e *client.Error
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return ExitUnreachable
	case errors.Is(err, client.ErrInvalidJobID):
		return ExitUsage
	case errors.As(err, &e):
		switch e.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			return ExitUsage
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return ExitUnreachable
		}
		return ExitRefused
	}
	return ExitRefused
}

// isTerminal reports whether w is a terminal, where bars can be drawn.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
