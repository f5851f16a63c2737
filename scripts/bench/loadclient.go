package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
)

// cmdHTTPLoad is the child process that plays the HTTP clients of the request loads. In a
// process of its own, its CPU time is read from /proc as the server's is, apart from the
// benchmark's: the report gives what the clients cost per request beside what the server
// does, so that a rate is seen to measure the server, not its load generator.
const cmdHTTPLoad = "http-load"

// loadSpec is one closed-loop HTTP load, as the benchmark asks the client process for it.
type loadSpec struct {
	Name string `json:"name"`
	// Base is the server's base URL, http://host:port.
	Base     string        `json:"base"`
	Clients  int           `json:"clients"`
	Duration time.Duration `json:"duration"`
	// Requests are sent round robin: client w's i-th request is Requests[(w+i) % len].
	Requests []httpRequest `json:"requests"`
	// Want is the status every answer must have; MinBody the fewest body bytes it may
	// carry, so that a load of empty or error answers fails rather than counts.
	Want    int `json:"want"`
	MinBody int `json:"min_body"`
}

// httpRequest is one request of a load.
type httpRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Header holds extra header lines, each ending in \r\n.
	Header string `json:"header,omitempty"`
	Body   []byte `json:"body,omitempty"`
}

// loadDone is the client process's answer to a loadSpec.
type loadDone struct {
	Type   string `json:"type"` // "load"
	Result Result `json:"result"`
	// Error is the first error of an operation, if any.
	Error string `json:"error,omitempty"`
}

// The HTTP clients the client process can load servers with.
const (
	clientRaw     = "raw"      // the benchmark's minimal client (httpclient.go)
	clientNetHTTP = "net/http" // Go's own, as a Go user would write a load loop
)

// httpDoer sends one request and returns the answer's status and body length.
type httpDoer interface {
	do(ctx context.Context, method, path, header string, body []byte) (status, n int, err error)
	close()
}

// httpLoadMain reads one loadSpec a line from stdin, runs it with the HTTP client that
// -client names and prints its loadDone on stdout, until stdin ends. Connections to a
// server are kept between loads, so that the next load measures requests rather than
// handshakes.
func httpLoadMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmdHTTPLoad, flag.ContinueOnError)
	kind := fs.String("client", clientRaw, "the HTTP client: "+clientRaw+" or "+clientNetHTTP)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kind != clientRaw && *kind != clientNetHTTP {
		return fmt.Errorf("-client %q: want %s or %s", *kind, clientRaw, clientNetHTTP)
	}
	clients := map[string]httpDoer{}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	out := json.NewEncoder(stdout)
	lines := bufio.NewScanner(stdin)
	lines.Buffer(nil, 16<<20)
	for lines.Scan() {
		var spec loadSpec
		if err := json.Unmarshal(lines.Bytes(), &spec); err != nil {
			return fmt.Errorf("read a load: %w", err)
		}
		if len(spec.Requests) == 0 {
			return fmt.Errorf("load %s has no requests", spec.Name)
		}
		client, ok := clients[spec.Base]
		if !ok {
			var err error
			if client, err = newHTTPDoer(*kind, spec.Base); err != nil {
				return err
			}
			clients[spec.Base] = client
		}
		res := closedLoop(ctx, spec.Name, spec.Clients, spec.Duration, httpOp(client, spec))
		done := loadDone{Type: "load", Result: res}
		if res.FirstErr != nil {
			done.Error = res.FirstErr.Error()
		}
		if err := out.Encode(done); err != nil {
			return err
		}
	}
	return lines.Err()
}

// newHTTPDoer is the client kind for the server at base.
func newHTTPDoer(kind, base string) (httpDoer, error) {
	if kind == clientNetHTTP {
		return &netHTTP{base: base, client: newHTTPClient(256)}, nil
	}
	return newRawHTTP(base)
}

// netHTTP is Go's net/http client behind httpDoer, with a keep-alive connection per load
// client: to compare the benchmark's own client with it (-client net/http).
type netHTTP struct {
	base   string
	client *http.Client
}

func (h *netHTTP) do(ctx context.Context, method, path, header string, body []byte) (int, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(header, "\r\n"), "\r\n") {
		if name, value, ok := strings.Cut(line, ":"); ok {
			req.Header.Add(name, strings.TrimSpace(value))
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, int(n), err
}

func (h *netHTTP) close() { h.client.CloseIdleConnections() }

// httpOp sends the spec's requests round robin and checks every answer.
func httpOp(client httpDoer, spec loadSpec) Op {
	next := make([]int, spec.Clients)
	return func(ctx context.Context, w int) error {
		req := spec.Requests[(w+next[w])%len(spec.Requests)]
		next[w]++
		status, n, err := client.do(ctx, req.Method, req.Path, req.Header, req.Body)
		switch {
		case err != nil:
			return err
		case status != spec.Want:
			return fmt.Errorf("%s %s answered %d, want %d", req.Method, req.Path, status, spec.Want)
		case n < spec.MinBody:
			return fmt.Errorf("%s %s answered %d with a body of %d bytes, want at least %d", req.Method, req.Path, status, n, spec.MinBody)
		}
		return nil
	}
}

// httpLoad is a running client process of the request loads.
type httpLoad struct {
	proc *devbin.Process
	in   *os.File
	done chan loadDone
}

// httpLoad starts the stage's HTTP client process.
func (s *rig) httpLoad() (*httpLoad, error) {
	stdin, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	h := &httpLoad{in: w, done: make(chan loadDone, 1)}
	onLine := func(line string) {
		var d loadDone
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &d) == nil && d.Type == "load" {
			h.done <- d
		}
	}
	h.proc, err = s.start(devbin.Spec{Name: "HTTP load client", Args: []string{s.b.self, cmdHTTPLoad, "-client", s.b.client()},
		Log: filepath.Join(s.dir, "http-load.log"), OnLine: onLine, Stdin: stdin})
	stdin.Close()
	if err != nil {
		w.Close()
		return nil, err
	}
	return h, nil
}

// run has the client process run one load and returns its result; a failed operation
// fails the load.
func (h *httpLoad) run(ctx context.Context, spec loadSpec) (Result, error) {
	line, err := json.Marshal(spec)
	if err != nil {
		return Result{}, err
	}
	if _, err := h.in.Write(append(line, '\n')); err != nil {
		return Result{}, fmt.Errorf("send a load to %s: %w", h.proc.Name(), err)
	}
	select {
	case d := <-h.done:
		res := d.Result
		if d.Error != "" {
			res.FirstErr = errors.New(d.Error)
		}
		return res, nil
	case <-h.proc.Done():
		return Result{}, h.proc.ExitError()
	case <-time.After(spec.Duration + time.Minute):
		return Result{}, fmt.Errorf("%s did not finish %s in time:\n%s", h.proc.Name(), spec.Name, h.proc.Tail(10))
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// close ends the client process: its stdin ends, and with it the process.
func (h *httpLoad) close() { h.in.Close() }
