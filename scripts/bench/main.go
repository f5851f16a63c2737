// Command bench measures longhaul beside what its users would run instead, in one run on one
// machine: the Gin peer (Gin and asynq, hand-written) and the Node peer (the original demo's
// Hono, BullMQ and ws) of peers/, started as their own processes on the same Redis and
// driven by the same HTTP and WebSocket clients. It measures job initiation and status
// reads, beside the raw Redis operations under them; WebSocket fan-out to thousands of
// clients, and to tens of thousands on one API; thousands of watchers of one big job; a
// reconnect storm after an API restart; memory after connections close; the worker path
// beside no-op asynq tasks; and whole jobs end to end. It starts its own redis-server
// processes, builds the longhaul binary and the Gin peer, installs the Node peer's packages
// (peers/node/install.sh), and re-executes itself for its client processes (HTTP load,
// WebSocket clients) and the no-op asynq worker. From the repository root (it is a package
// of the tooling's module, scripts/; relative paths are taken from there):
//
//	go -C scripts run ./bench                               the full benchmark (about 10 minutes on 2 cores)
//	go -C scripts run ./bench -out ../docs/benchmarks.md    ... and write the report with its chart
//	go -C scripts run ./bench -quick                        a tiny version, seconds, for tests
//	go -C scripts run ./bench -profile /tmp/prof            ... and save pprof profiles of longhaul's processes
//	go -C scripts run ./bench -client net/http              ... the HTTP loads from Go's net/http client instead of the benchmark's
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// dispatch runs the benchmark, or one of the child processes the benchmark starts of itself.
func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case cmdFanoutClient:
			return fanoutClientMain(ctx, args[1:], stdin, stdout)
		case cmdNoopWorker:
			return noopWorkerMain(ctx, args[1:], stdout)
		case cmdHTTPLoad:
			return httpLoadMain(ctx, args[1:], stdin, stdout)
		}
	}
	return run(ctx, args, stdout, stderr)
}

// Options are the benchmark's flags.
type Options struct {
	// Quick runs the tiny version: every stage, with small sizes and short loads.
	Quick bool
	// Out is where the Markdown report goes, with its chart beside it; empty writes nothing.
	Out string
	// Bin is a longhaul binary to use instead of building one.
	Bin string
	// Overlay is passed to `go build -overlay` to measure a proposed change of the core
	// code without editing the tree.
	Overlay string
	// Profile is a directory for pprof profiles of longhaul's processes; empty takes none.
	Profile string
	// Results, when set, is where the run's results are saved as JSON.
	Results string
	// Render, when set, reads results saved by an earlier run and writes its report to Out
	// without measuring anything: for a report whose findings were edited since.
	Render string
	// Client is the HTTP client of the request loads: clientRaw, the benchmark's own (the
	// default when empty), or clientNetHTTP, Go's, to compare the two.
	Client string
	// Only limits the run to the named stages (comma-separated); empty runs them all.
	Only string
	// Work is the directory for Redis data, logs and produced files; empty uses a
	// temporary one, removed afterwards.
	Work string
	// Log receives progress lines.
	Log io.Writer
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.BoolVar(&o.Quick, "quick", false, "run the tiny version (seconds); writes nothing unless -out is given")
	fs.StringVar(&o.Out, "out", "", "write the Markdown report here (and its chart beside it, as -latency.png)")
	fs.StringVar(&o.Bin, "bin", "", "use this longhaul binary instead of building ./cmd/longhaul")
	fs.StringVar(&o.Overlay, "overlay", "", "go build -overlay file, to measure a proposed change without editing the tree")
	fs.StringVar(&o.Profile, "profile", "", "save pprof profiles of the longhaul processes in this directory")
	fs.StringVar(&o.Results, "results", "", "also save the results as JSON here")
	fs.StringVar(&o.Render, "render", "", "write -out from results saved by -results, measuring nothing")
	fs.StringVar(&o.Only, "only", "", "comma-separated stages to run: "+strings.Join(stageNames(), ","))
	fs.StringVar(&o.Work, "work", "", "working directory (default: a temporary one)")
	fs.StringVar(&o.Client, "client", clientRaw, "the HTTP client of the request loads: "+clientRaw+" (the benchmark's own) or "+clientNetHTTP)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.Client != clientRaw && o.Client != clientNetHTTP {
		return fmt.Errorf("-client %q: want %s or %s", o.Client, clientRaw, clientNetHTTP)
	}
	for name := range strings.SplitSeq(o.Only, ",") {
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(stageNames(), name) {
			return fmt.Errorf("-only: no stage %q; the stages are %s", name, strings.Join(stageNames(), ", "))
		}
	}
	o.Log = stderr
	if o.Render != "" {
		return render(o.Render, o.Out, stdout)
	}
	rep, err := Run(ctx, o)
	if rep != nil {
		fmt.Fprint(stdout, rep.Table())
	}
	if err != nil {
		return err
	}
	if o.Results != "" {
		data, err := json.MarshalIndent(rep, "", " ")
		if err == nil {
			err = os.WriteFile(o.Results, data, 0o644)
		}
		if err != nil {
			return fmt.Errorf("save results: %w", err)
		}
	}
	if o.Out != "" {
		if err := rep.Write(o.Out); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s and %s\n", o.Out, chartPath(o.Out))
	}
	return nil
}

// render writes the report of saved results.
func render(results, out string, stdout io.Writer) error {
	if out == "" {
		return errors.New("-render needs -out")
	}
	data, err := os.ReadFile(results)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("read %s: %w", results, err)
	}
	fmt.Fprint(stdout, rep.Table())
	return rep.Write(out)
}

// Run runs the benchmark and returns its report. On an error the report holds the stages
// that finished.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	b := &bench{opts: o, plan: fullPlan, log: o.Log}
	if o.Quick {
		b.plan = quickPlan
	}
	var err error
	if b.fileLimit, err = raiseFileLimit(uint64(b.plan.Scale.Conns) + 4096); err != nil {
		return nil, fmt.Errorf("raise the open-files limit: %w", err)
	}
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	defer b.cleanup()
	rep := newReport(b)
	started := time.Now()
	for _, s := range stages {
		if !b.selected(s.name) {
			continue
		}
		b.logf("stage %s", s.name)
		if err := s.run(b, ctx, rep); err != nil {
			return rep, fmt.Errorf("stage %s: %w", s.name, err)
		}
	}
	rep.Took = time.Since(started)
	rep.Machine.LoadEnd = loadAverage()
	return rep, nil
}

// stage is one part of the benchmark; it adds its results to the report.
type stage struct {
	name string
	run  func(*bench, context.Context, *Report) error
}

var stages = []stage{
	{"initiate", (*bench).runInitiate},
	{"status", (*bench).runStatus},
	{"fanout", (*bench).runFanout},
	{"scale", (*bench).runScale},
	{"watchers", (*bench).runWatchers},
	{"storm", (*bench).runStorm},
	{"afterclose", (*bench).runAfterClose},
	{"worker", (*bench).runWorkerPath},
	{"e2e", (*bench).runEndToEnd},
}

func stageNames() []string {
	names := make([]string, len(stages))
	for i, s := range stages {
		names[i] = s.name
	}
	return names
}

// bench is one run: its plan, its binary and its working directory.
type bench struct {
	opts Options
	plan Plan
	log  io.Writer
	root string // the module's root
	bin  string // the longhaul binary
	self string // this program, for its child processes
	work string
	temp bool // work is ours to remove

	ginBin string // the Gin peer's binary
	nodeOK bool   // the Node peer is installed and measured
	// fileLimit is the open-files limit of this process and of those it starts.
	fileLimit uint64
	// sources counts the loopback source addresses given to client processes so far.
	sources int
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) profiling() bool { return b.opts.Profile != "" }

// client is the HTTP client the request loads use.
func (b *bench) client() string {
	if b.opts.Client == "" {
		return clientRaw
	}
	return b.opts.Client
}

func (b *bench) selected(name string) bool {
	if b.opts.Only == "" {
		return true
	}
	for s := range strings.SplitSeq(b.opts.Only, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

func (b *bench) prepare(ctx context.Context) error {
	var err error
	if b.root, err = devbin.ModuleRoot(); err != nil {
		return err
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	b.work = b.opts.Work
	if b.work != "" {
		if err := os.MkdirAll(b.work, 0o755); err != nil {
			return err
		}
	} else {
		if b.work, err = os.MkdirTemp("", "longhaul-bench-"); err != nil {
			return err
		}
		b.temp = true
	}
	if b.profiling() {
		if err := os.MkdirAll(b.opts.Profile, 0o755); err != nil {
			return err
		}
	}
	b.bin = b.opts.Bin
	if b.bin == "" {
		b.bin = filepath.Join(b.work, "longhaul")
		b.logf("building %s", b.bin)
		if err := b.build(ctx); err != nil {
			return err
		}
	}
	return b.preparePeers(ctx)
}

func (b *bench) cleanup() {
	if b.temp {
		os.RemoveAll(b.work)
	}
}

// stageDir is a fresh directory for one stage's Redis, logs and files.
func (b *bench) stageDir(name string) (string, error) {
	dir := filepath.Join(b.work, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}
